package spec

import (
	"encoding/binary"
	"math"
)

// The rules shared by the lossy codecs (FORMAT.md §7.3).

// chunkRows is the height of a chunk and the granularity of groups (§7.3.3).
const chunkRows = 16

// A matrix is the coded matrix W of a lossy tensor (§7.3.2) and the rows
// its groups hold (§7.3.3).
type matrix struct {
	rows, cols int
	transposed bool
	ends       []int // end row of each group
}

// parseMatrix checks the dtype, view and groups of a lossy tensor.
func parseMatrix(t *tensorEntry, transposed bool) (*matrix, error) {
	switch t.dtype {
	case "F64", "F32", "F16", "BF16", "F8_E4M3", "F8_E5M2":
	default:
		return nil, formatErr("codec %s: dtype %s is not floating point", t.codec, t.dtype)
	}
	if transposed && len(t.shape) != 2 {
		return nil, formatErr("codec %s: transposed tensor of rank %d", t.codec, len(t.shape))
	}
	v := defaultView(t.shape)
	if t.view != v {
		return nil, formatErr("codec %s: view %v, want %v", t.codec, t.view, v)
	}
	m := &matrix{rows: int(v[0]), cols: int(v[1]), transposed: transposed}
	if transposed {
		m.rows, m.cols = m.cols, m.rows
	}
	if t.n == 0 {
		return m, nil // validate made sure there are no groups
	}
	if transposed {
		if len(t.groups) != 1 {
			return nil, formatErr("codec %s: transposed tensor with %d groups", t.codec, len(t.groups))
		}
		m.ends = []int{m.rows}
		return m, nil
	}
	prev := 0
	for i, g := range t.groups {
		cols := uint64(m.cols)
		if g.end%cols != 0 || g.end/cols > uint64(m.rows) {
			return nil, formatErr("codec %s: group %d does not end at a row", t.codec, i)
		}
		end := int(g.end / cols)
		if end <= prev || (i < len(t.groups)-1 && (end-prev)%chunkRows != 0) {
			return nil, formatErr("codec %s: group %d holds rows [%d, %d), not a multiple of %d", t.codec, i, prev, end, chunkRows)
		}
		m.ends = append(m.ends, end)
		prev = end
	}
	return m, nil
}

// groupRows returns the rows [r0, r1) of group i.
func (m *matrix) groupRows(i int) (int, int) {
	r0 := 0
	if i > 0 {
		r0 = m.ends[i-1]
	}
	return r0, m.ends[i]
}

// checkAuxNames rejects aux data whose name the codec does not list (§7.3.5).
func checkAuxNames(t *tensorEntry, allowed ...string) error {
	for _, a := range t.aux {
		ok := false
		for _, n := range allowed {
			ok = ok || a.name == n
		}
		if !ok {
			return formatErr("codec %s has no aux %q", t.codec, a.name)
		}
	}
	return nil
}

// A paramReader reads one key of a params map.
type paramReader func(m *msgReader, key string) error

// parseParamMap parses the params of ecsq, rtn and q4k (§7.3.4): one map
// holding exactly the given keys in any order, nothing after it.
func parseParamMap(t *tensorEntry, keys map[string]paramReader) error {
	if t.params == nil {
		return formatErr("codec %s needs params", t.codec)
	}
	m := &msgReader{b: t.params}
	seen := map[string]bool{}
	err := m.mapKeys("params", func(k string) error {
		read, ok := keys[k]
		if !ok {
			return formatErr("codec %s: unknown param %q", t.codec, k)
		}
		seen[k] = true
		return read(m, k)
	})
	if err != nil {
		return err
	}
	if m.remaining() != 0 {
		return formatErr("codec %s: bytes after the params", t.codec)
	}
	for k := range keys {
		if !seen[k] {
			return formatErr("codec %s: param %q missing", t.codec, k)
		}
	}
	return nil
}

func boolParam(dst *bool) paramReader {
	return func(m *msgReader, k string) (err error) {
		*dst, err = m.boolean(k)
		return err
	}
}

func uintParam(dst *uint64, lo, hi uint64) paramReader {
	return func(m *msgReader, k string) error {
		v, err := m.uint(k)
		if err != nil {
			return err
		}
		if v < lo || v > hi {
			return formatErr("param %s = %d not in [%d, %d]", k, v, lo, hi)
		}
		*dst = v
		return nil
	}
}

// parseScales decodes aux scales (§7.3.6): a lossless F16 frame of cols
// values, each at most 0x7bff.
func parseScales(b []byte, cols int) ([]float32, error) {
	raw, err := Lossless("F16", uint64(cols), b)
	if err != nil {
		return nil, err
	}
	if len(raw) != 2*cols {
		return nil, formatErr("aux scales decodes to %d bytes, want %d", len(raw), 2*cols)
	}
	s := make([]float32, cols)
	for j := range s {
		h := binary.LittleEndian.Uint16(raw[2*j:])
		if h > 0x7bff {
			return nil, formatErr("scale %d is %#04x: negative, infinite or NaN", j, h)
		}
		s[j] = f16ToF32(h)
	}
	return s, nil
}

// parseLevels decodes aux levels (§7.3.7): ⌈cols/4⌉ bytes, 2 bits per
// column LSB first, zero padding bits, some level nonzero.
func parseLevels(b []byte, cols int) ([]uint8, error) {
	if len(b) != (cols+3)/4 {
		return nil, formatErr("aux levels has %d bytes, want %d", len(b), (cols+3)/4)
	}
	if r := cols % 4; r != 0 && b[len(b)-1]>>(2*r) != 0 {
		return nil, formatErr("aux levels has nonzero padding bits")
	}
	lv := make([]uint8, cols)
	nonzero := false
	for j := range lv {
		lv[j] = b[j/4] >> (2 * (j % 4)) & 3
		nonzero = nonzero || lv[j] != 0
	}
	if !nonzero {
		return nil, formatErr("aux levels holds only level 0")
	}
	return lv, nil
}

// f16ToF32 widens IEEE binary16 bits to binary32 (exact).
func f16ToF32(h uint16) float32 {
	sign := float32(1)
	if h&0x8000 != 0 {
		sign = -1
	}
	e := int(h>>10) & 0x1f
	f := int(h & 0x3ff)
	switch e {
	case 0:
		return sign * float32(math.Ldexp(float64(f), -24))
	case 31:
		if f == 0 {
			return sign * float32(math.Inf(1))
		}
		return float32(math.NaN())
	}
	return sign * float32(math.Ldexp(float64(f|0x400), e-25))
}

// storeMatrix converts the decoded rows×cols matrix w (row-major) to the
// tensor's storage order (transposing back when the matrix is the view's
// transpose, §7.3.2) and then to its dtype (§7.3.8).
func storeMatrix(m *matrix, dtype string, w []float32) ([]byte, []float32) {
	vals := w
	if m.transposed {
		vals = make([]float32, len(w))
		for r := range m.rows {
			for c := range m.cols {
				vals[c*m.rows+r] = w[r*m.cols+c]
			}
		}
	}
	out := make([]byte, 0, len(vals)*dtypeSize(dtype))
	for _, v := range vals {
		out = appendFromFloat32(out, v, dtype)
	}
	return out, vals
}

// appendFromFloat32 appends the little-endian bits of v converted to a
// floating-point dtype (§7.3.8): F32 as is, F64 exactly, F16, BF16 and
// F8_E5M2 rounded to nearest even with IEEE overflow to infinity, F8_E4M3
// rounded to nearest even and saturated at ±448. NaN becomes the dtype's
// quiet NaN (the fp32 sign and top payload bits are kept where the dtype
// has room, as IEEE conversions do; the canonical NaN 0x7fc00000 gives
// 0x7e00, 0x7fc0, 0x7f and 0x7ff8000000000000).
func appendFromFloat32(b []byte, v float32, dtype string) []byte {
	bits := math.Float32bits(v)
	sign := bits >> 31
	isNaN := v != v
	switch dtype {
	case "F32":
		return binary.LittleEndian.AppendUint32(b, bits)
	case "F64":
		if isNaN {
			return binary.LittleEndian.AppendUint64(b, uint64(sign)<<63|0x7ff8000000000000|uint64(bits&0x7fffff)<<29)
		}
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(float64(v)))
	case "F16":
		if isNaN {
			return binary.LittleEndian.AppendUint16(b, uint16(sign<<15|0x7e00|(bits&0x7fffff)>>13))
		}
		return binary.LittleEndian.AppendUint16(b, uint16(roundFloat(v, 10, 15, false)))
	case "BF16":
		if isNaN {
			return binary.LittleEndian.AppendUint16(b, uint16(bits>>16)|0x40)
		}
		return binary.LittleEndian.AppendUint16(b, uint16(roundFloat(v, 7, 127, false)))
	case "F8_E5M2":
		if isNaN {
			return append(b, 0x7f)
		}
		return append(b, byte(roundFloat(v, 2, 15, false)))
	case "F8_E4M3":
		if isNaN {
			return append(b, 0x7f)
		}
		return append(b, byte(roundFloat(v, 3, 7, true)))
	}
	panic("spec: appendFromFloat32 of a non-float dtype")
}

// roundFloat returns the bits of a non-NaN v rounded to nearest, ties to
// even, in a binary format of p mantissa bits and exponent bias bias, with
// subnormals. Past the largest finite value the result is infinity, or
// with e4m3 (no infinities; the all-ones code is NaN) ±448.
func roundFloat(v float32, p int, bias int, e4m3 bool) uint32 {
	a := math.Abs(float64(v))
	var sign uint32
	if math.Signbit(float64(v)) {
		sign = 1
	}
	w := uint(1 + p + expBits(bias)) // the format's width
	signed := func(mag uint32) uint32 { return sign<<(w-1) | mag }
	emin := 1 - bias
	maxExpField := 2*bias + 1 // all ones: infinity and NaN in IEEE formats
	var maxFinite float64
	if e4m3 {
		maxFinite = 448
	} else {
		maxFinite = math.Ldexp(2-math.Ldexp(1, -p), maxExpField-1-bias)
	}
	if math.IsInf(a, 0) {
		if e4m3 {
			return signed(0x7e)
		}
		return signed(uint32(maxExpField) << p)
	}
	if a == 0 {
		return signed(0)
	}
	_, e2 := math.Frexp(a)  // a = frac·2^e2, frac in [0.5, 1)
	e := max(e2-1, emin)    // exponent of a's binade, at least the subnormals'
	q := math.Ldexp(1, e-p) // the spacing of representable values there
	r := math.RoundToEven(a/q) * q
	if r > maxFinite {
		if e4m3 {
			return signed(0x7e)
		}
		return signed(uint32(maxExpField) << p)
	}
	if r < math.Ldexp(1, emin) {
		return signed(uint32(r / math.Ldexp(1, emin-p))) // subnormal
	}
	_, e2 = math.Frexp(r)
	e = e2 - 1
	mant := uint32(r/math.Ldexp(1, e-p)) - 1<<p
	return signed(uint32(e+bias)<<p | mant)
}

// expBits is the exponent width of a format with the given bias.
func expBits(bias int) int {
	n := 0
	for 1<<n < 2*bias+2 {
		n++
	}
	return n
}
