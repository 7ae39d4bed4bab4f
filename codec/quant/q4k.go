package quant

import (
	"encoding/binary"
	"math"
)

// Q4_K geometry, from ggml-common.h.
const (
	// Q4KBlockWeights is the number of weights in a Q4_K super-block (QK_K).
	Q4KBlockWeights = 256

	// Q4KBlockBytes is the encoded size of one super-block: fp16 d, fp16
	// dmin, 12 bytes of packed 6-bit scales and mins, 128 bytes of nibbles.
	Q4KBlockBytes = 144

	q4kSub       = 32 // weights per sub-block
	q4kSubBlocks = Q4KBlockWeights / q4kSub
	q4kScalesOff = 4
	q4kQsOff     = 16
)

// Q4KBytes returns the encoded size of n weights, counting a trailing
// partial super-block as a whole one. It returns -1 if n is negative.
func Q4KBytes(n int) int {
	if n < 0 {
		return -1
	}
	// n/256*144 cannot overflow because 144 < 256.
	return (n/Q4KBlockWeights + min(n%Q4KBlockWeights, 1)) * Q4KBlockBytes
}

// QuantizeQ4K appends the Q4_K encoding of src to dst and returns the
// extended slice. The output is bit-identical to ggml's
// quantize_row_q4_K_ref, the quantizer llama.cpp uses for Q4_K when no
// importance matrix is given. If len(src) is not a multiple of
// Q4KBlockWeights the last super-block is encoded as if src were padded
// with zeros, which is what callers of ggml must do by hand.
//
// Inputs that are not finite produce deterministic but meaningless output,
// as in ggml.
func QuantizeQ4K(dst []byte, src []float32) []byte {
	dst, out := growBytes(dst, Q4KBytes(len(src)))
	var block [Q4KBlockWeights]float32
	for len(src) > 0 {
		x := src
		if len(x) < Q4KBlockWeights {
			clear(block[:])
			copy(block[:], x)
			x = block[:]
		}
		quantizeQ4KBlock((*[Q4KBlockBytes]byte)(out), (*[Q4KBlockWeights]float32)(x))
		out = out[Q4KBlockBytes:]
		src = src[min(len(src), Q4KBlockWeights):]
	}
	return dst
}

// DequantizeQ4K appends the weights encoded in src to dst and returns the
// extended slice, 256 weights per 144-byte super-block, as ggml's
// dequantize_row_q4_K computes them. It returns an error matching
// ErrCorrupt if len(src) is not a whole number of super-blocks, or if a
// super-block's d or dmin is an infinity or NaN: ggml's
// ggml_validate_row_data rejects those too, and no quantizer emits them
// for finite input.
func DequantizeQ4K(dst []float32, src []byte) ([]float32, error) {
	if r := len(src) % Q4KBlockBytes; r != 0 {
		return dst, corrupt(len(src)-r, "truncated Q4_K block: %d of %d bytes", r, Q4KBlockBytes)
	}
	// Checking every header before growing dst keeps dst untouched on error.
	for off := 0; off < len(src); off += Q4KBlockBytes {
		if !fp16Finite(binary.LittleEndian.Uint16(src[off:])) {
			return dst, corrupt(off, "Q4_K super-block scale d is not finite")
		}
		if !fp16Finite(binary.LittleEndian.Uint16(src[off+2:])) {
			return dst, corrupt(off+2, "Q4_K super-block scale dmin is not finite")
		}
	}
	n := len(src) / Q4KBlockBytes
	dst, out := growFloats(dst, n*Q4KBlockWeights)
	for i := range n {
		dequantizeQ4KBlock((*[Q4KBlockWeights]float32)(out[i*Q4KBlockWeights:]),
			(*[Q4KBlockBytes]byte)(src[i*Q4KBlockBytes:]))
	}
	return dst, nil
}

func dequantizeQ4KBlock(y *[Q4KBlockWeights]float32, b *[Q4KBlockBytes]byte) {
	d := fp32(binary.LittleEndian.Uint16(b[0:]))
	dmin := fp32(binary.LittleEndian.Uint16(b[2:]))
	scales := (*[12]byte)(b[q4kScalesOff:])
	// Each 32-byte run of qs holds two sub-blocks: the low nibbles are the
	// first, the high nibbles the second.
	for h := range 4 {
		sc, m := scaleMinK4(2*h, scales)
		d1, m1 := float32(d*float32(sc)), float32(dmin*float32(m))
		sc, m = scaleMinK4(2*h+1, scales)
		d2, m2 := float32(d*float32(sc)), float32(dmin*float32(m))
		q := (*[32]byte)(b[q4kQsOff+32*h:])
		lo := (*[32]float32)(y[64*h:])
		hi := (*[32]float32)(y[64*h+32:])
		for l, v := range q {
			lo[l] = float32(d1*float32(v&0xf)) - m1
			hi[l] = float32(d2*float32(v>>4)) - m2
		}
	}
}

// scaleMinK4 is ggml's get_scale_min_k4: sub-blocks 0-3 keep their 6-bit
// scale and min in the low bits of bytes j and j+4; sub-blocks 4-7 keep
// the low 4 bits in the nibbles of byte j+4 and the high 2 bits in the
// otherwise unused top bits of bytes j-4 and j.
func scaleMinK4(j int, q *[12]byte) (sc, m uint8) {
	if j < 4 {
		return q[j] & 63, q[j+4] & 63
	}
	return q[j+4]&0xf | (q[j-4]>>6)<<4, q[j+4]>>4 | (q[j]>>6)<<4
}

// nearestInt is ggml's nearest_int: adding 1.5·2^23 leaves round(f), ties
// to even, in the low mantissa bits. Outside ±2^22 the result is garbage,
// exactly as in ggml; no conversion from float to int is involved, so the
// garbage is the same on every platform. Once inlined, a product passed
// as f may be fused with the addition, so callers round products
// explicitly: nearestInt(float32(a*b)).
func nearestInt(f float32) int32 {
	v := f + 12582912
	return int32(math.Float32bits(v)&0x007fffff) - 0x00400000
}

func clampQ(l int32, hi int32) uint8 { return uint8(max(0, min(hi, l))) }

// quantizeQ4KBlock is quantize_row_q4_K_ref for one super-block. The
// explicit float32 conversions around products that feed an addition
// forbid fused multiply-add, so the result matches ggml built without
// contraction on every architecture Go supports.
func quantizeQ4KBlock(y *[Q4KBlockBytes]byte, x *[Q4KBlockWeights]float32) {
	var (
		L       [Q4KBlockWeights]uint8
		weights [q4kSub]float32
		scales  [q4kSubBlocks]float32
		mins    [q4kSubBlocks]float32
	)
	var maxScale, maxMin float32
	for j := range q4kSubBlocks {
		xs := (*[q4kSub]float32)(x[q4kSub*j:])
		var sumX2 float32
		for _, v := range xs {
			sumX2 += float32(v * v)
		}
		avX := sqrt32(sumX2 / 32)
		for l, v := range xs {
			weights[l] = avX + abs32(v)
		}
		scales[j], mins[j] = makeQKX2(xs, &weights, (*[q4kSub]uint8)(L[q4kSub*j:]))
		if scales[j] > maxScale {
			maxScale = scales[j]
		}
		if mins[j] > maxMin {
			maxMin = mins[j]
		}
	}

	var invScale, invMin float32
	if maxScale > 0 {
		invScale = 63 / maxScale
	}
	if maxMin > 0 {
		invMin = 63 / maxMin
	}
	sm := (*[12]byte)(y[q4kScalesOff:])
	for j := range q4kSubBlocks {
		// The truncation to uint8 before clamping is ggml's; it matters
		// only for the negative scales a degenerate fit can produce.
		ls := min(63, uint8(nearestInt(float32(invScale*scales[j]))))
		lm := min(63, uint8(nearestInt(float32(invMin*mins[j]))))
		if j < 4 {
			sm[j] = ls
			sm[j+4] = lm
		} else {
			sm[j+4] = ls&0xf | (lm&0xf)<<4
			sm[j-4] |= (ls >> 4) << 6
			sm[j] |= (lm >> 4) << 6
		}
	}
	dh, dminh := fp16(maxScale/63), fp16(maxMin/63)
	binary.LittleEndian.PutUint16(y[0:], dh)
	binary.LittleEndian.PutUint16(y[2:], dminh)

	// Requantize against the scales as stored, so encode and decode agree.
	// A sub-block whose stored scale is zero keeps the levels from the fit,
	// as in ggml.
	for j := range q4kSubBlocks {
		sc, m := scaleMinK4(j, sm)
		d := float32(fp32(dh) * float32(sc))
		if d == 0 {
			continue
		}
		dm := float32(fp32(dminh) * float32(m))
		for ii := range q4kSub {
			L[q4kSub*j+ii] = clampQ(nearestInt((x[q4kSub*j+ii]+dm)/d), 15)
		}
	}

	qs := y[q4kQsOff:]
	for h := range 4 {
		for l := range 32 {
			qs[32*h+l] = L[64*h+l] | L[64*h+l+32]<<4
		}
	}
}

// makeQKX2 is ggml's make_qkx2_quants with the arguments Q4_K passes:
// n=32, nmax=15, rmin=-1, rdelta=0.1, nstep=20, squared error. It fits
// x ≈ scale·L - min by trying 21 grid densities around the plain min/max
// one and solving weighted least squares for scale and min at each; the
// minimum is never allowed above zero. It returns scale and min (≥ 0 as
// ggml's the_min, i.e. negated).
func makeQKX2(x, w *[q4kSub]float32, L *[q4kSub]uint8) (scale, theMin float32) {
	const (
		nmax   = 15
		rmin   = float32(-1)
		rdelta = float32(0.1)
		nstep  = 20
	)
	lo, hi := x[0], x[0]
	sumW := w[0]
	sumX := float32(sumW * x[0])
	for i := 1; i < q4kSub; i++ {
		if x[i] < lo {
			lo = x[i]
		}
		if x[i] > hi {
			hi = x[i]
		}
		sumW += w[i]
		sumX += float32(w[i] * x[i])
	}
	if lo > 0 {
		lo = 0
	}
	if hi == lo {
		*L = [q4kSub]uint8{}
		return 0, -lo
	}
	iscale := nmax / (hi - lo)
	scale = 1 / iscale
	var bestErr float32
	for i, v := range x {
		L[i] = clampQ(nearestInt(float32(iscale*(v-lo))), nmax)
		diff := float32(scale*float32(L[i])) + lo - v
		diff = diff * diff
		bestErr += float32(w[i] * diff)
	}
	var aux [q4kSub]uint8
	for is := 0; is <= nstep; is++ {
		iscale = (rmin + float32(rdelta*float32(is)) + nmax) / (hi - lo)
		var sumL, sumL2, sumXL float32
		for i, v := range x {
			l := clampQ(nearestInt(float32(iscale*(v-lo))), nmax)
			aux[i] = l
			fl := float32(l)
			sumL += float32(w[i] * fl)
			sumL2 += float32(w[i] * fl * fl)
			sumXL += float32(w[i] * fl * v)
		}
		D := float32(sumW*sumL2) - float32(sumL*sumL)
		if !(D > 0) {
			continue
		}
		thisScale := (float32(sumW*sumXL) - float32(sumX*sumL)) / D
		thisMin := (float32(sumL2*sumX) - float32(sumL*sumXL)) / D
		if thisMin > 0 {
			thisMin = 0
			thisScale = sumXL / sumL2
		}
		var curErr float32
		for i, v := range x {
			diff := float32(thisScale*float32(aux[i])) + thisMin - v
			diff = diff * diff
			curErr += float32(w[i] * diff)
		}
		if curErr < bestErr {
			*L = aux
			bestErr = curErr
			scale = thisScale
			lo = thisMin
		}
	}
	return scale, -lo
}
