package dtype

import (
	"math"

	"github.com/nwcodec/nwc/format"
)

// The two OCP 8-bit float formats. E4M3 (the "FN" variant PyTorch and
// safetensors use) has no infinities: S.1111.111 is NaN and the largest
// finite value is 448. E5M2 follows IEEE 754 conventions.
var e4m3Table, e5m2Table [256]float32

// The FNUZ variants (exponent bias 8 and 16) have no infinities and no
// negative zero: 0x80 is their only NaN. E8M0, the OCP microscaling
// scale, is an unsigned power of two 2^(e−127) with 0xFF for NaN.
var e4m3fnuzTable, e5m2fnuzTable, e8m0Table [256]float32

func init() {
	for i := 0; i < 256; i++ {
		e4m3Table[i] = decodeF8(uint8(i), 4, 3, 7, f8FN)
		e5m2Table[i] = decodeF8(uint8(i), 5, 2, 15, f8IEEE)
		e4m3fnuzTable[i] = decodeF8(uint8(i), 4, 3, 8, f8FNUZ)
		e5m2fnuzTable[i] = decodeF8(uint8(i), 5, 2, 16, f8FNUZ)
		e8m0Table[i] = float32(math.Ldexp(1, i-127))
	}
	e8m0Table[0xff] = float32(math.NaN())
}

// f8Tables maps each 8-bit float type to its decoding table.
var f8Tables = map[format.DType]*[256]float32{
	format.F8E4M3: &e4m3Table, format.F8E5M2: &e5m2Table,
	format.F8E4M3FNUZ: &e4m3fnuzTable, format.F8E5M2FNUZ: &e5m2fnuzTable, format.F8E8M0: &e8m0Table,
}

// The three conventions for the special values of an 8-bit float.
type f8Kind int

const (
	f8IEEE f8Kind = iota // E5M2: the top exponent holds infinities and NaN
	f8FN                 // E4M3: no infinities, S.1111.111 is NaN
	f8FNUZ               // no infinities, no negative zero, 0x80 is NaN
)

func decodeF8(b uint8, ebits, mbits uint, bias int, kind f8Kind) float32 {
	sign := float32(1)
	if b&0x80 != 0 {
		sign = -1
	}
	e := int(b>>mbits) & (1<<ebits - 1)
	m := int(b) & (1<<mbits - 1)
	emax := 1<<ebits - 1
	switch {
	case kind == f8FNUZ && b == 0x80:
		return float32(math.NaN())
	case kind == f8FN && e == emax && m == 1<<mbits-1:
		return float32(math.NaN())
	case kind == f8IEEE && e == emax && m == 0:
		return sign * float32(math.Inf(1))
	case kind == f8IEEE && e == emax:
		return float32(math.NaN())
	case e == 0:
		return sign * float32(math.Ldexp(float64(m), 1-bias-int(mbits)))
	}
	return sign * float32(math.Ldexp(float64(1<<mbits+m), e-bias-int(mbits)))
}

// toF8 rounds v to the nearest value of an 8-bit format given its decode
// table, ties to the even code. Values beyond the largest finite value
// saturate for E4M3 (no infinity) and overflow to infinity for E5M2 when
// they are past the rounding midpoint.
func toF8(v float32, table *[256]float32, saturate bool) uint8 {
	if v != v {
		return 0x7f
	}
	var sign uint8
	a := v
	if math.Signbit(float64(v)) {
		sign = 0x80
		a = -v
	}
	// Positive codes 0..0x7f decode to increasing values (then NaN/Inf).
	maxCode := uint8(0x7e) // E4M3: 0x7f is NaN
	if !saturate {
		maxCode = 0x7b // E5M2: 0x7c is +Inf
	}
	if a >= table[maxCode] {
		if saturate || a < table[maxCode]+float32((table[maxCode]-table[maxCode-1])/2) {
			return sign | maxCode
		}
		return sign | 0x7c
	}
	lo, hi := uint8(0), maxCode
	for hi-lo > 1 { // invariant: table[lo] <= a < table[hi]
		mid := (lo + hi) / 2
		if table[mid] <= a {
			lo = mid
		} else {
			hi = mid
		}
	}
	dl, dh := a-table[lo], table[hi]-a
	if dl < dh || (dl == dh && lo%2 == 0) {
		return sign | lo
	}
	return sign | hi
}
