package quant

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
)

func TestRTNValidate(t *testing.T) {
	tests := []struct {
		r  RTN
		ok bool
	}{
		{RTN{Bits: 2}, true},
		{RTN{Bits: 8, Group: 1}, true},
		{RTN{Bits: 4, Group: 128}, true},
		{RTN{}, false},
		{RTN{Bits: 1}, false},
		{RTN{Bits: 9}, false},
		{RTN{Bits: 4, Group: -1}, false},
	}
	for _, tt := range tests {
		err := tt.r.Validate()
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrConfig)) {
			t.Errorf("%+v.Validate() = %v, want ok=%v", tt.r, err, tt.ok)
		}
	}
}

func TestRTNRowBytes(t *testing.T) {
	tests := []struct {
		r    RTN
		n    int
		want int
	}{
		{RTN{Bits: 4}, 0, 0},
		{RTN{Bits: 4}, 1, 2 + 1 + 1},
		{RTN{Bits: 4}, 128, 2 + 1 + 64},
		{RTN{Bits: 4, Group: 128}, 300, 6 + 2 + 150},
		{RTN{Bits: 3}, 10, 2 + 1 + 4},
		{RTN{Bits: 8, Group: 1}, 5, 10 + 5 + 5},
		{RTN{Bits: 2, Group: 3}, 7, 6 + 1 + 2},
		{RTN{Bits: 4, Group: 4}, 9, 6 + 2 + 5},
		{RTN{Bits: 1}, 10, -1},
		{RTN{Bits: 4, Group: -2}, 10, -1},
		{RTN{Bits: 4}, -1, -1},
		{RTN{Bits: 8}, math.MaxInt, -1},
		{RTN{Bits: 2, Group: 1}, math.MaxInt / 2, -1},
	}
	for _, tt := range tests {
		if got := tt.r.RowBytes(tt.n); got != tt.want {
			t.Errorf("%+v.RowBytes(%d) = %d, want %d", tt.r, tt.n, got, tt.want)
		}
		if tt.want >= 0 && tt.n < 1<<20 {
			if got := len(tt.r.Quantize(nil, make([]float32, tt.n))); got != tt.want {
				t.Errorf("%+v: len(Quantize(%d weights)) = %d, want %d", tt.r, tt.n, got, tt.want)
			}
		}
	}
}

// TestRTNHandBuilt pins the layout with rows whose encodings were worked
// out by hand.
func TestRTNHandBuilt(t *testing.T) {
	tests := []struct {
		name string
		r    RTN
		row  []float32
		enc  []byte
		dec  []float32
	}{{
		// Group 1: lo −1, hi 2, s = fp16(0.2) = 0.199951171875, z = 5.
		// Group 2 is constant: lo 0, hi 1, s = fp16(1/15) = 0.066650390625,
		// z = 0, q = 15. Group 3 is all zero: s = 0, z = 0, q = 0.
		name: "4-bit",
		r:    RTN{Bits: 4, Group: 4},
		row:  []float32{-1, 0, 0.5, 2, 1, 1, 1, 1, 0},
		enc: []byte{
			0x66, 0x32, 0x44, 0x2c, 0x00, 0x00, // scales
			0x05, 0x00, // zeros 5, 0, 0 and 4 padding bits
			0x50, 0xf8, 0xff, 0xff, 0x00, // levels 0 5 8 15 | 15 15 15 15 | 0
		},
		dec: []float32{-0.999755859375, 0, 0.599853515625, 1.99951171875,
			0.999755859375, 0.999755859375, 0.999755859375, 0.999755859375, 0},
	}, {
		// s = 7/7 = 1, z = 3, levels 0..7 straddle byte boundaries.
		name: "3-bit",
		r:    RTN{Bits: 3, Group: 8},
		row:  []float32{-3, -2, -1, 0, 1, 2, 3, 4},
		enc:  []byte{0x00, 0x3c, 0x03, 0x88, 0xc6, 0xfa},
		dec:  []float32{-3, -2, -1, 0, 1, 2, 3, 4},
	}, {
		// All negative: lo −0.7, hi 0, s = fp16(0.7/3) = 0.2332763671875,
		// z = round(3.0007…) = 3, every level 0.
		name: "2-bit negative",
		r:    RTN{Bits: 2, Group: 0},
		row:  []float32{-0.7, -0.7, -0.7},
		enc:  []byte{0x77, 0x33, 0x03, 0x00},
		dec:  []float32{-0.6998291015625, -0.6998291015625, -0.6998291015625},
	}}
	for _, tt := range tests {
		enc := tt.r.Quantize(nil, tt.row)
		if !slices.Equal(enc, tt.enc) {
			t.Errorf("%s: Quantize = % x, want % x", tt.name, enc, tt.enc)
		}
		dec, err := tt.r.Dequantize(nil, tt.enc, len(tt.row))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !slices.Equal(dec, tt.dec) {
			t.Errorf("%s: Dequantize = %v, want %v", tt.name, dec, tt.dec)
		}
	}
}

var rtnConfigs = []RTN{
	{Bits: 2, Group: 128}, {Bits: 3, Group: 128}, {Bits: 4, Group: 128}, {Bits: 5, Group: 7},
	{Bits: 6, Group: 32}, {Bits: 7, Group: 1}, {Bits: 8, Group: 64}, {Bits: 4, Group: 0},
	{Bits: 4, Group: 100000},
}

// checkRTN verifies that dec is within the error bound of the format for
// row: half a step, plus the range lost to rounding the scale to fp16.
func checkRTN(t testing.TB, r RTN, row []float32, enc []byte, dec []float32) {
	t.Helper()
	g := r.group()
	maxq := float64(int(1)<<r.Bits - 1)
	for k := 0; k*g < len(row); k++ {
		grp := row[k*g : min(len(row), (k+1)*g)]
		lo, hi := 0.0, 0.0
		for _, w := range grp {
			lo, hi = min(lo, float64(w)), max(hi, float64(w))
		}
		s := float64(fp32(binary.LittleEndian.Uint16(enc[2*k:])))
		exact := (hi - lo) / maxq
		bound := s/2 + maxq*math.Abs(s-exact) + 1e-6*max(-lo, hi)
		if exact > 65504 || (exact < 6.2e-5 && exact > 0) {
			continue // outside fp16's normal range the bound does not apply
		}
		for i, w := range grp {
			if d := math.Abs(float64(w) - float64(dec[k*g+i])); d > bound {
				t.Fatalf("%+v: weight %d = %g decodes to %g, error %g > bound %g",
					r, k*g+i, w, dec[k*g+i], d, bound)
			}
		}
	}
}

func TestRTNErrorBound(t *testing.T) {
	for i, r := range rtnConfigs {
		for _, n := range []int{1, 127, 128, 129, 1000} {
			row := gaussian(n, uint64(100+i), 0.05)
			if n == 1000 {
				addConst(row[500:], 0.3) // groups entirely of one sign
			}
			enc := r.Quantize(nil, row)
			dec, err := r.Dequantize(nil, enc, n)
			if err != nil {
				t.Fatalf("%+v n=%d: %v", r, n, err)
			}
			checkRTN(t, r, row, enc, dec)
		}
	}
}

// TestRTNRequantize checks that decoded weights requantize within the
// format's error bound. The bytes need not repeat: when −lo/s and hi/s
// both round down, the top level goes unused, and the decoded group then
// has a narrower range and a different scale.
func TestRTNRequantize(t *testing.T) {
	for i, r := range rtnConfigs {
		row := gaussian(1000, uint64(200+i), 1)
		dec, err := r.Dequantize(nil, r.Quantize(nil, row), len(row))
		if err != nil {
			t.Fatal(err)
		}
		enc2 := r.Quantize(nil, dec)
		dec2, err := r.Dequantize(nil, enc2, len(row))
		if err != nil {
			t.Fatal(err)
		}
		checkRTN(t, r, dec, enc2, dec2)
	}
}

// TestRTNQuantizeFitted picks values on the grids GroupParams fits to one
// row from another row, out-of-range ones included (as error
// compensation produces), and checks that QuantizeFitted stores exactly the levels
// Level chose, with the fitted parameters: the row decodes to
// (Level − z)·s everywhere.
func TestRTNQuantizeFitted(t *testing.T) {
	differ := 0
	for i, r := range rtnConfigs {
		for _, n := range []int{1, 127, 300} {
			fit := gaussian(n, uint64(300+i), 1)
			// The values actually coded: narrower than fit, so a grid
			// fitted to them would differ, with outliers to clamp.
			moved := gaussian(n, uint64(400+i), 0.3)
			moved[n/2] = 5
			g := r.Group
			if g == 0 {
				g = DefaultGroup
			}
			want := make([]float32, n)
			for k := 0; k < n; k += g {
				hi := min(n, k+g)
				s, z := r.GroupParams(fit[k:hi])
				for j := k; j < hi; j++ {
					want[j] = (r.Level(moved[j], s, z) - z) * s
				}
			}
			dec, err := r.Dequantize(nil, r.QuantizeFitted(nil, want, fit), n)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(dec, want) {
				t.Errorf("%+v n=%d: fitted values do not decode to themselves", r, n)
			}
			if !slices.Equal(r.Quantize(nil, want), r.QuantizeFitted(nil, want, fit)) {
				differ++
			}
		}
	}
	if differ < len(rtnConfigs) {
		t.Errorf("fitting to another row changed the bytes in only %d cases; the test sees too little", differ)
	}
}

func TestRTNSQNR(t *testing.T) {
	x := gaussian(1<<16, 300, 1)
	prev := 0.0
	for bits := 2; bits <= 8; bits++ {
		r := RTN{Bits: bits, Group: 128}
		enc := r.Quantize(nil, x)
		y, err := r.Dequantize(nil, enc, len(x))
		if err != nil {
			t.Fatal(err)
		}
		got := sqnr(x, y)
		t.Logf("RTN int%d g128 SQNR on N(0,1): %.2f dB at %.3f bpw", bits, got, 8*float64(len(enc))/float64(len(x)))
		// Each bit is worth about 6 dB once the grid is fine enough.
		if got < prev+4 {
			t.Errorf("int%d SQNR %.2f dB, want at least 4 dB over int%d's %.2f", bits, got, bits-1, prev)
		}
		prev = got
	}
}

func TestRTNSpecialValues(t *testing.T) {
	inf := float32(math.Inf(1))
	nan := float32(math.NaN())
	tests := []struct {
		name string
		row  []float32
		want []float32 // nil: only require finite output
	}{
		{"NaN is zero", []float32{nan, 1, -1, nan}, nil},
		{"all NaN", []float32{nan, nan}, []float32{0, 0}},
		{"infinities", []float32{inf, -inf, 1}, nil},
		{"huge", []float32{3e38, -3e38}, nil},
		{"below fp16", []float32{1e-9, -1e-9}, []float32{0, 0}},
		{"negative zero", []float32{float32(math.Copysign(0, -1))}, []float32{0}},
	}
	r := RTN{Bits: 4}
	for _, tt := range tests {
		enc := r.Quantize(nil, tt.row)
		dec, err := r.Dequantize(nil, enc, len(tt.row))
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		for i, v := range dec {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Errorf("%s: weight %d decodes to %g", tt.name, i, v)
			}
			if tt.want != nil && v != tt.want[i] {
				t.Errorf("%s: weight %d = %g, want %g", tt.name, i, v, tt.want[i])
			}
		}
		if math.IsNaN(float64(tt.row[0])) && len(tt.row) == 4 {
			if dec[0] != 0 || dec[3] != 0 {
				t.Errorf("%s: NaN decodes to %g, %g, want 0", tt.name, dec[0], dec[3])
			}
		}
	}
}

func TestRTNQuantizeAppends(t *testing.T) {
	r := RTN{Bits: 3, Group: 5}
	row := gaussian(23, 400, 1)
	want := r.Quantize(nil, row)
	dirty := append(slices.Repeat([]byte{0xff}, 64)[:2:64], 0)[:2]
	got := r.Quantize(dirty, row)
	if !slices.Equal(got[:2], []byte{0xff, 0xff}) || !slices.Equal(got[2:], want) {
		t.Errorf("appending to a dirty buffer: % x, want ff ff % x", got, want)
	}
	dec, err := r.Dequantize([]float32{7}, want, len(row))
	if err != nil || len(dec) != 1+len(row) || dec[0] != 7 {
		t.Errorf("Dequantize did not append: %v, %v", dec, err)
	}
}

func TestRTNQuantizePanicsOnInvalidConfig(t *testing.T) {
	defer func() {
		if e, ok := recover().(error); !ok || !errors.Is(e, ErrConfig) {
			t.Errorf("recovered %v, want an ErrConfig error", e)
		}
	}()
	RTN{Bits: 1}.Quantize(nil, []float32{1})
}

func TestRTNDequantizeErrors(t *testing.T) {
	r := RTN{Bits: 3, Group: 4}
	row := gaussian(10, 500, 1) // 3 groups: zeros use 9 bits, levels 30
	good := r.Quantize(nil, row)
	if len(good) != 6+2+4 {
		t.Fatalf("setup: %d bytes", len(good))
	}
	mod := func(i int, v byte) []byte {
		b := slices.Clone(good)
		b[i] = v
		return b
	}
	tests := []struct {
		name   string
		r      RTN
		src    []byte
		n      int
		config bool
		offset int64
	}{
		{name: "bad bits", r: RTN{Bits: 9}, src: good, n: 10, config: true},
		{name: "bad group", r: RTN{Bits: 3, Group: -4}, src: good, n: 10, config: true},
		{name: "negative n", r: r, src: good, n: -1, offset: 0},
		{name: "huge n", r: r, src: good, n: math.MaxInt, offset: 0},
		{name: "empty", r: r, src: nil, n: 10, offset: 0},
		{name: "short", r: r, src: good[:11], n: 10, offset: 11},
		{name: "long", r: r, src: append(slices.Clone(good), 0), n: 10, offset: 12},
		{name: "n too large", r: r, src: good, n: 11, offset: 12},
		{name: "NaN scale", r: r, src: mod(3, 0x7e), n: 10, offset: 2},
		{name: "Inf scale", r: r, src: mod(5, 0x7c), n: 10, offset: 4},
		{name: "negative scale", r: r, src: mod(1, good[1]|0x80), n: 10, offset: 0},
		{name: "zero padding", r: r, src: mod(7, good[7]|0x80), n: 10, offset: 7},
		{name: "level padding", r: r, src: mod(11, good[11]|0x40), n: 10, offset: 11},
	}
	for _, tt := range tests {
		prefix := []float32{1, 2}
		got, err := tt.r.Dequantize(prefix, tt.src, tt.n)
		if tt.config {
			if !errors.Is(err, ErrConfig) {
				t.Errorf("%s: err = %v, want ErrConfig", tt.name, err)
			}
		} else {
			var ce *CorruptError
			if !errors.Is(err, ErrCorrupt) || !errors.As(err, &ce) || ce.Offset != tt.offset {
				t.Errorf("%s: err = %v, want ErrCorrupt at offset %d", tt.name, err, tt.offset)
			}
		}
		if !slices.Equal(got, prefix) {
			t.Errorf("%s: dst modified on error", tt.name)
		}
	}
}

func BenchmarkRTN(b *testing.B) {
	x := gaussian(benchWeights, 1, 0.02)
	for _, r := range []RTN{{Bits: 4, Group: 128}, {Bits: 3, Group: 128}, {Bits: 8, Group: 128}} {
		enc := r.Quantize(nil, x)
		b.Run(fmt.Sprintf("Quantize/int%d", r.Bits), func(b *testing.B) {
			dst := make([]byte, 0, len(enc))
			b.SetBytes(4 * benchWeights)
			for b.Loop() {
				dst = r.Quantize(dst[:0], x)
			}
		})
		b.Run(fmt.Sprintf("Dequantize/int%d", r.Bits), func(b *testing.B) {
			dst := make([]float32, 0, benchWeights)
			b.SetBytes(4 * benchWeights)
			for b.Loop() {
				var err error
				if dst, err = r.Dequantize(dst[:0], enc, benchWeights); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
