package quant

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
)

// DefaultGroup is the group size GPTQ and AWQ checkpoints most often use,
// and the one RTN assumes when Group is zero.
const DefaultGroup = 128

// maxFP16 is the largest finite fp16 value, 65504.
const maxFP16 = 0x7bff

// RTN configures asymmetric round-to-nearest quantization of one row of
// weights in groups, the storage format of GPTQ and AWQ checkpoints.
//
// Each group of Group consecutive weights (the last may be shorter) gets
// an fp16 scale s and a Bits-wide integer zero point z, and each weight w
// a Bits-wide level q, so that w ≈ (q − z)·s. The range quantized always
// contains zero, as in GPTQ's quantizer: with lo = min(0, min w) and
// hi = max(0, max w),
//
//	s = fp16((hi − lo) / (2^Bits − 1))
//	z = clamp(roundEven(−lo / s), 0, 2^Bits − 1)
//	q = clamp(roundEven(w / s) + z, 0, 2^Bits − 1)
//
// computed in float32 with s already rounded to fp16, so the decoder's
// (q − z)·s is the value the encoder chose. Containing zero keeps z in
// range for groups whose weights all have one sign, which would otherwise
// be clipped badly, and makes an all-zero group exact.
//
// The zero value is not valid; Bits must be in [2, 8].
type RTN struct {
	Bits  int // bits per level and per zero point, 2 to 8
	Group int // weights per group; 0 means DefaultGroup
}

// Validate reports whether r describes a supported format. The error
// matches ErrConfig.
func (r RTN) Validate() error {
	if r.Bits < 2 || r.Bits > 8 {
		return fmt.Errorf("%w: RTN bits %d not in [2, 8]", ErrConfig, r.Bits)
	}
	if r.Group < 0 {
		return fmt.Errorf("%w: RTN group size %d is negative", ErrConfig, r.Group)
	}
	return nil
}

func (r RTN) group() int {
	if r.Group == 0 {
		return DefaultGroup
	}
	return r.Group
}

// RowBytes returns the encoded size of a row of n weights, or -1 if r is
// invalid, n is negative or the size does not fit in an int.
func (r RTN) RowBytes(n int) int {
	if r.Validate() != nil || n < 0 {
		return -1
	}
	size, ok := r.rowBytes(n)
	if !ok {
		return -1
	}
	return size
}

// rowBytes is RowBytes for a valid r and n ≥ 0, reporting overflow.
func (r RTN) rowBytes(n int) (int, bool) {
	g := r.group()
	groups := n/g + min(n%g, 1)
	scales, ok1 := mulInt(groups, 2)
	zeros, ok2 := packedBytes(groups, r.Bits)
	levels, ok3 := packedBytes(n, r.Bits)
	total, ok4 := addInt(scales, zeros)
	total, ok5 := addInt(total, levels)
	return total, ok1 && ok2 && ok3 && ok4 && ok5
}

// packedBytes is the size of count values of width bits packed densely.
func packedBytes(count, width int) (int, bool) {
	nbits, ok := mulInt(count, width)
	return nbits/8 + min(nbits%8, 1), ok
}

func mulInt(a, b int) (int, bool) {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	return int(lo), hi == 0 && lo <= math.MaxInt
}

func addInt(a, b int) (int, bool) {
	s := a + b
	return s, s >= a
}

// Quantize appends the encoding of row to dst and returns the extended
// slice, laid out as RowBytes(len(row)) bytes: all group scales, then the
// packed zero points, then the packed levels. NaN weights are stored as
// their group's zero point, that is as 0. Quantize panics if r is invalid;
// a codec should Validate configurations it reads from input.
func (r RTN) Quantize(dst []byte, row []float32) []byte {
	return r.QuantizeFitted(dst, row, row)
}

// QuantizeFitted is Quantize with every group's scale and zero point
// fitted to the same group of fit, a row as long as row, instead of to
// row itself. It serves encoders that choose values on the grid of
// parameters fitted beforehand, such as GPTQ-style error compensation
// (see GroupParams and Level): a value (q − z)·s of its group's grid is
// stored as exactly that level. It panics if r is invalid or the lengths
// differ.
func (r RTN) QuantizeFitted(dst []byte, row, fit []float32) []byte {
	if err := r.Validate(); err != nil {
		panic(err)
	}
	if len(fit) != len(row) {
		panic("quant: RTN fit and row lengths differ")
	}
	size, ok := r.rowBytes(len(row))
	if !ok {
		panic("quant: RTN row too large")
	}
	dst, out := growBytes(dst, size)
	g := r.group()
	groups := len(row)/g + min(len(row)%g, 1)
	scales := out[:2*groups]
	zbytes, _ := packedBytes(groups, r.Bits)
	zw := bitWriter{buf: out[2*groups : 2*groups+zbytes]}
	qw := bitWriter{buf: out[2*groups+zbytes:]}
	maxq := r.maxq()
	for k := range groups {
		lo, hi := k*g, min(len(row), (k+1)*g)
		h, s, z := r.groupParams(fit[lo:hi], maxq)
		binary.LittleEndian.PutUint16(scales[2*k:], h)
		zw.write(uint32(z), r.Bits)
		for _, w := range row[lo:hi] {
			qw.write(uint32(level(w, s, z, maxq)), r.Bits)
		}
	}
	zw.flush()
	qw.flush()
	return dst
}

// GroupParams returns the scale and zero point Quantize gives a group
// whose weights are grp; the group decodes to (q − z)·s.
func (r RTN) GroupParams(grp []float32) (s, z float32) {
	_, s, z = r.groupParams(grp, r.maxq())
	return s, z
}

// Level returns the level Quantize gives the weight w in a group with
// scale s and zero point z (from GroupParams).
func (r RTN) Level(w, s, z float32) float32 { return level(w, s, z, r.maxq()) }

func (r RTN) maxq() float32 { return float32(int(1)<<r.Bits - 1) }

func (r RTN) groupParams(grp []float32, maxq float32) (h uint16, s, z float32) {
	h, s, lo := rtnScale(grp, maxq)
	if s != 0 {
		z = clampF(roundEven(-lo/s), maxq)
	}
	return h, s, z
}

func level(w, s, z, maxq float32) float32 {
	if s == 0 || w != w {
		return z
	}
	return clampF(roundEven(w/s)+z, maxq)
}

// rtnScale returns the group's scale as stored (fp16 bits) and as used,
// and the low end of its range, min(0, min grp). NaNs are ignored. Scales
// beyond fp16's range saturate to its largest finite value rather than
// becoming infinite, which would turn every weight into a NaN.
func rtnScale(grp []float32, maxq float32) (h uint16, s, lo float32) {
	var hi float32
	for _, w := range grp {
		if w < lo {
			lo = w
		}
		if w > hi {
			hi = w
		}
	}
	h = fp16((hi - lo) / maxq)
	if !fp16Finite(h) {
		h = maxFP16
	}
	return h, fp32(h), lo
}

// clampF clamps an integral float32 to [0, hi]; NaN becomes 0. Clamping
// before any conversion to an integer type matters: Go leaves conversion
// of out-of-range floats implementation-defined.
func clampF(f, hi float32) float32 {
	if !(f >= 0) {
		return 0
	}
	return min(f, hi)
}

// Dequantize decodes a row of n weights from src, which must be exactly
// r.RowBytes(n) bytes long, appends them to dst and returns the extended
// slice. Malformed input yields an error matching ErrCorrupt: a length
// other than RowBytes(n), a scale that is negative, infinite or NaN, or a
// nonzero padding bit. An invalid r yields an error matching ErrConfig.
// On error dst is returned unchanged.
func (r RTN) Dequantize(dst []float32, src []byte, n int) ([]float32, error) {
	if err := r.Validate(); err != nil {
		return dst, err
	}
	if n < 0 {
		return dst, corrupt(0, "negative weight count %d", n)
	}
	size, ok := r.rowBytes(n)
	if !ok {
		return dst, corrupt(0, "weight count %d overflows the row size", n)
	}
	if len(src) != size {
		return dst, corrupt(min(len(src), size), "RTN row of %d weights needs %d bytes, have %d", n, size, len(src))
	}
	g := r.group()
	groups := n/g + min(n%g, 1)
	for k := range groups {
		// Our encoder writes +0 for an all-zero group, never −0, so a set
		// sign bit is as foreign as an infinity.
		if h := binary.LittleEndian.Uint16(src[2*k:]); !fp16Finite(h) || h&0x8000 != 0 {
			return dst, corrupt(2*k, "RTN scale %#04x is not finite and non-negative", h)
		}
	}
	zbytes, _ := packedBytes(groups, r.Bits)
	zoff := 2 * groups
	qoff := zoff + zbytes
	if err := checkPadding(src[zoff:qoff], groups*r.Bits, zoff); err != nil {
		return dst, err
	}
	if err := checkPadding(src[qoff:], n*r.Bits, qoff); err != nil {
		return dst, err
	}

	// Every check is done; n ≤ 8·len(src)/Bits, so the allocation is
	// bounded by the input.
	dst, out := growFloats(dst, n)
	zr := bitReader{buf: src[zoff:qoff]}
	qr := bitReader{buf: src[qoff:]}
	for k := range groups {
		s := fp32(binary.LittleEndian.Uint16(src[2*k:]))
		z := int32(zr.read(r.Bits))
		for i := k * g; i < min(n, (k+1)*g); i++ {
			// (q − z) has at most 9 significant bits and s 11, so the
			// product is exact and needs no rounding discipline.
			out[i] = float32(int32(qr.read(r.Bits))-z) * s
		}
	}
	return dst, nil
}

// checkPadding reports a nonzero bit past the first nbits of buf, which
// would make two encodings of the same row differ.
func checkPadding(buf []byte, nbits, off int) error {
	if nbits%8 == 0 || len(buf) == 0 {
		return nil
	}
	last := buf[len(buf)-1]
	if last>>(nbits%8) != 0 {
		return corrupt(off+len(buf)-1, "nonzero padding bits %#02x", last)
	}
	return nil
}

// bitWriter packs values least-significant bit first: value i of width b
// occupies stream bits [i·b, i·b+b), and stream bit k is bit k%8 of byte
// k/8. For b = 2, 4 and 8 this is the order GPTQ uses inside its
// little-endian int32 words.
type bitWriter struct {
	buf  []byte
	acc  uint64
	nacc int
}

func (w *bitWriter) write(v uint32, width int) {
	w.acc |= uint64(v) << w.nacc
	w.nacc += width
	for w.nacc >= 8 {
		w.buf[0] = byte(w.acc)
		w.buf = w.buf[1:]
		w.acc >>= 8
		w.nacc -= 8
	}
}

func (w *bitWriter) flush() {
	if w.nacc > 0 {
		w.buf[0] = byte(w.acc)
		w.buf = w.buf[1:]
		w.acc, w.nacc = 0, 0
	}
}

// bitReader undoes bitWriter. The caller guarantees buf holds every bit
// it reads.
type bitReader struct {
	buf  []byte
	acc  uint64
	nacc int
}

func (r *bitReader) read(width int) uint32 {
	for r.nacc < width {
		r.acc |= uint64(r.buf[0]) << r.nacc
		r.buf = r.buf[1:]
		r.nacc += 8
	}
	v := uint32(r.acc & (1<<width - 1))
	r.acc >>= width
	r.nacc -= width
	return v
}
