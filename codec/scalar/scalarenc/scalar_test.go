package scalarenc

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/codec/scalar"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/ldlq"
)

// minSQNR is what each codec must reach on Gaussian data at its defaults
// (ecsq ≈ 4.05 bpw, rtn int4 g128 ≈ 4.16 bpw, q4k 4.5 bpw), with margin
// for small matrices whose statistics wander. The figures measured on
// 4096×1024 are logged by TestSQNR.
var minSQNR = map[string]float64{scalar.ECSQ: 21.5, scalar.TCQ: 22.3, scalar.RTN: 18.5, scalar.Q4K: 21}

func TestRoundTrip(t *testing.T) {
	shapes := []struct {
		name       string
		shape      []uint64
		transposed bool
	}{
		{"square", []uint64{64, 64}, false},
		{"ragged rows", []uint64{37, 48}, false},
		{"1xN", []uint64{1, 300}, false},
		{"Nx1", []uint64{300, 1}, false},
		{"conv", []uint64{24, 8, 3, 3}, false},
		{"transposed", []uint64{48, 40}, true},
		{"transposed ragged", []uint64{33, 21}, true},
		{"long rows", []uint64{20, 700}, false},
	}
	for _, id := range []string{scalar.ECSQ, scalar.TCQ, scalar.RTN, scalar.Q4K} {
		for _, s := range shapes {
			for _, dt := range []format.DType{format.F32, format.BF16, format.F16} {
				t.Run(fmt.Sprintf("%s/%s/%s", id, s.name, dt), func(t *testing.T) {
					tn := gaussian("w", 3, s.shape, 0.05, dt)
					c, _ := codec.LookupEncoder(id)
					// Small groups, so that multi-group tensors are
					// exercised.
					opts := &codec.EncodeOptions{Transposed: s.transposed, GroupBytes: 1024}
					enc, err := c.Encode(tn, opts)
					if err != nil {
						t.Fatal(err)
					}
					if want := codec.DefaultView(s.shape); enc.View != want {
						t.Errorf("view %v, want %v", enc.View, want)
					}
					got, err := decodeAll(t, id, tn, enc)
					if err != nil {
						t.Fatal(err)
					}
					x, y := floats(t, tn.Data, dt), floats(t, got, dt)
					if q := sqnr(x, y); q < minSQNR[id] {
						t.Errorf("SQNR %.2f dB, want ≥ %.1f", q, minSQNR[id])
					}
					again, err := c.Encode(tn, opts)
					if err != nil {
						t.Fatal(err)
					}
					if !equalEncoded(enc, again) {
						t.Error("encoding twice gave different bytes")
					}
				})
			}
		}
	}
}

func equalEncoded(a, b *codec.Encoded) bool {
	if !bytes.Equal(a.Params, b.Params) || a.View != b.View || len(a.Groups) != len(b.Groups) || len(a.Aux) != len(b.Aux) {
		return false
	}
	for i := range a.Groups {
		if a.Groups[i].End != b.Groups[i].End || !bytes.Equal(a.Groups[i].Data, b.Groups[i].Data) {
			return false
		}
	}
	for i := range a.Aux {
		if a.Aux[i].Name != b.Aux[i].Name || !bytes.Equal(a.Aux[i].Data, b.Aux[i].Data) {
			return false
		}
	}
	return true
}

// TestECSQGaussianRate checks ecsq against the high-resolution limit of
// entropy-coded uniform scalar quantization, 6.02·R − 1.53 dB, at R = 4
// bits per weight counted from every stored byte (groups, scales, tables,
// params) of a 4096×1024 Gaussian matrix. The step is found by bisection.
func TestECSQGaussianRate(t *testing.T) {
	if testing.Short() {
		t.Skip("encodes a 4096×1024 matrix about 12 times (~3 s); skipped in -short mode")
	}
	const rows, cols, target = 4096, 1024, 4.0
	tn := gaussian("w", 1, []uint64{rows, cols}, 0.02, format.F32)
	bpw := func(step float64) (float64, *codec.Encoded) {
		enc, err := ecsqEncoder{}.Encode(tn, &codec.EncodeOptions{Step: step})
		if err != nil {
			t.Fatal(err)
		}
		return float64(8*encodedBytes(enc)) / (rows * cols), enc
	}
	// The rate falls as the step grows: bisect on log2(step).
	lo, hi := math.Log2(0.1), math.Log2(0.5)
	var enc *codec.Encoded
	var rate float64
	for range 12 {
		mid := (lo + hi) / 2
		rate, enc = bpw(math.Exp2(mid))
		if rate > target {
			lo = mid
		} else {
			hi = mid
		}
	}
	if math.Abs(rate-target) > 0.002 {
		t.Fatalf("bisection ended at %.4f bpw", rate)
	}
	got, err := decodeAll(t, scalar.ECSQ, tn, enc)
	if err != nil {
		t.Fatal(err)
	}
	q := sqnr(floats(t, tn.Data, format.F32), floats(t, got, format.F32))
	// Compare at the exact rate reached: 6.02 dB per bit.
	bound := 6.0206*rate - 10*math.Log10(math.Pi*math.E/6)
	t.Logf("ecsq on N(0,1) 4096×1024: %.4f bpw, SQNR %.3f dB, bound %.3f dB (gap %.3f dB), params %s", rate, q, bound, bound-q, paramString(enc.Params))
	if math.Abs(q-bound) > 0.1 {
		t.Errorf("SQNR %.3f dB at %.4f bpw, want within 0.1 dB of %.3f", q, rate, bound)
	}
}

func paramString(b []byte) string {
	r := format.NewMsgReader(b, -1)
	var s string
	_ = r.MapKeys("params", func(k string) error {
		v, err := r.Raw(k)
		s += fmt.Sprintf("%s=%x ", k, v)
		return err
	})
	return s
}

// TestSQNR logs each codec's rate and SQNR on a large Gaussian matrix and
// checks them against minSQNR.
func TestSQNR(t *testing.T) {
	tn := gaussian("w", 2, []uint64{1024, 1024}, 1, format.F32)
	for _, id := range []string{scalar.ECSQ, scalar.RTN, scalar.Q4K} {
		c, _ := codec.LookupEncoder(id)
		enc, err := c.Encode(tn, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeAll(t, id, tn, enc)
		if err != nil {
			t.Fatal(err)
		}
		q := sqnr(floats(t, tn.Data, format.F32), floats(t, got, format.F32))
		bpw := float64(8*encodedBytes(enc)) / (1024 * 1024)
		t.Logf("%s defaults on N(0,1) 1024×1024: %.3f bpw, SQNR %.2f dB", id, bpw, q)
		if q < minSQNR[id] {
			t.Errorf("%s: SQNR %.2f dB, want ≥ %.1f", id, q, minSQNR[id])
		}
	}
}

// TestECSQOffset checks the centroid shift: at a coarse step on Laplacian
// data, where the density falls steeply across each cell, it must lower
// the error at the same rate.
func TestECSQOffset(t *testing.T) {
	const rows, cols = 512, 256
	g := gaussian("g", 5, []uint64{rows, cols}, 1, format.F32)
	u := gaussian("u", 6, []uint64{rows, cols}, 1, format.F32)
	x, y := floats(t, g.Data, format.F32), floats(t, u.Data, format.F32)
	lap := make([]float32, len(x))
	for i := range lap {
		// x·y of independent normals is heavy tailed (a Bessel-K law),
		// close enough to the Laplacian shape of trained weights.
		lap[i] = x[i] * y[i]
	}
	tn := f32Tensor("w", []uint64{rows, cols}, lap)
	enc, err := ecsqEncoder{}.Encode(tn, &codec.EncodeOptions{Step: 1})
	if err != nil {
		t.Fatal(err)
	}
	p := ecsqParams{step: 1}
	pr := format.NewMsgReader(enc.Params, -1)
	if err := pr.MapKeys("params", func(k string) (err error) {
		if k == "offset" {
			p.offset, err = pr.Uint(k)
			return err
		}
		_, err = pr.Raw(k)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	got, err := decodeAll(t, scalar.ECSQ, tn, enc)
	if err != nil {
		t.Fatal(err)
	}
	with := sqnr(lap, floats(t, got, format.F32))
	// The same levels decoded with offset 0.
	e, env := entry(scalar.ECSQ, tn, enc)
	e.Params = ecsqParams{step: p.step}.marshal()
	d, err := codec.LookupDecoder(scalar.ECSQ)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := d.NewDecoder(e, env)
	if err != nil {
		t.Fatal(err)
	}
	plain := make([]byte, len(tn.Data))
	for i, g := range enc.Groups {
		if err := dec.DecodeGroup(i, g.Data, plain[e.GroupStart(i)*4:g.End*4]); err != nil {
			t.Fatal(err)
		}
	}
	without := sqnr(lap, floats(t, plain, format.F32))
	t.Logf("offset %d/256: SQNR %.3f dB, %.3f dB at midpoints, %.2f bpw", p.offset, with, without, float64(8*encodedBytes(enc))/(rows*cols))
	if p.offset == 0 || with <= without {
		t.Errorf("offset %d: SQNR %.3f dB with, %.3f without", p.offset, with, without)
	}
}

// TestECSQLevels checks that importance levels refine their columns by
// the documented factors and survive the round trip.
func TestECSQLevels(t *testing.T) {
	const rows, cols = 256, 64
	tn := gaussian("w", 9, []uint64{rows, cols}, 1, format.F32)
	levels := make([]uint8, cols)
	for j := range levels {
		levels[j] = uint8(j % 4)
	}
	enc, err := ecsqEncoder{}.Encode(tn, &codec.EncodeOptions{Levels: levels, Step: 0.5, GroupBytes: 1})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := entry(scalar.ECSQ, tn, enc)
	if _, ok := e.AuxEntry(chunk.AuxLevels); !ok {
		t.Fatal("no levels section")
	}
	got, err := decodeAll(t, scalar.ECSQ, tn, enc)
	if err != nil {
		t.Fatal(err)
	}
	x, y := floats(t, tn.Data, format.F32), floats(t, got, format.F32)
	var mse [4]float64
	for i := range x {
		d := float64(x[i] - y[i])
		mse[levels[i%cols]] += d * d
	}
	for k := 1; k < 4; k++ {
		// The error scales with the step squared.
		ratio := mse[k] / mse[0]
		want := float64(scalar.LevelStepFactor[k] * scalar.LevelStepFactor[k])
		if ratio < want*0.8 || ratio > want*1.25 {
			t.Errorf("level %d: MSE ratio %.3f to level 0, want about %.3f", k, ratio, want)
		}
	}

	// All columns at one nonzero level use one table and still need the
	// levels section; all zero levels need none.
	for _, lv := range []uint8{0, 2} {
		all := make([]uint8, cols)
		for j := range all {
			all[j] = lv
		}
		enc, err := ecsqEncoder{}.Encode(tn, &codec.EncodeOptions{Levels: all})
		if err != nil {
			t.Fatal(err)
		}
		e, _ := entry(scalar.ECSQ, tn, enc)
		if _, ok := e.AuxEntry(chunk.AuxLevels); ok != (lv != 0) {
			t.Errorf("level %d everywhere: levels section present = %v", lv, ok)
		}
		if _, err := decodeAll(t, scalar.ECSQ, tn, enc); err != nil {
			t.Error(err)
		}
	}
}

// TestLDLQ checks the Hessian path: q4k refuses a Hessian; for ecsq and
// rtn a diagonal Hessian (no correlation between inputs) leaves nothing to
// compensate and reproduces the plain encoding, and a correlated one
// lowers the output error tr((W−Ŵ) H (W−Ŵ)ᵀ) against plain quantization
// at the same step or width.
func TestLDLQ(t *testing.T) {
	const rows, cols = 40, 300
	tn := gaussian("w", 4, []uint64{rows, cols}, 1, format.F32)
	diag := make([]float64, cols*cols)
	for j := range cols {
		diag[j*cols+j] = 1 + float64(j%7)
	}
	if _, err := (q4kEncoder{}).Encode(tn, &codec.EncodeOptions{Hessian: diag}); !errors.Is(err, ErrNoLDLQ) {
		t.Errorf("q4k with a Hessian: %v, want ErrNoLDLQ", err)
	}
	// Correlated inputs: H = X Xᵀ/n for X with a shared component.
	rng := rand.New(rand.NewPCG(7, 8))
	const n = 2000
	x := make([]float64, cols*n)
	for k := 0; k < n; k++ {
		common := rng.NormFloat64()
		for j := 0; j < cols; j++ {
			x[j*n+k] = common + 0.3*rng.NormFloat64()
		}
	}
	h := make([]float64, cols*cols)
	for i := 0; i < cols; i++ {
		for j := 0; j < cols; j++ {
			var s float64
			for k := 0; k < n; k++ {
				s += x[i*n+k] * x[j*n+k]
			}
			h[i*cols+j] = s / n
		}
	}
	w := floats(t, tn.Data, tn.DType)
	for _, tc := range []struct {
		id   string
		base codec.EncodeOptions
	}{
		{scalar.ECSQ, codec.EncodeOptions{Step: 0.5}},
		{scalar.RTN, codec.EncodeOptions{Bits: 3}}, // groups of 128 span blocks of 100 and of 1
	} {
		c, _ := codec.LookupEncoder(tc.id)
		o := tc.base
		o.Hessian = diag[:10]
		if _, err := c.Encode(tn, &o); !errors.Is(err, codec.ErrOptions) {
			t.Errorf("%s: Hessian of the wrong size: %v, want ErrOptions", tc.id, err)
		}
		o.Hessian, o.LDLQBlock = diag, 100
		got, err := c.Encode(tn, &o)
		if err != nil {
			t.Fatal(err)
		}
		plainOpts := tc.base
		want, err := c.Encode(tn, &plainOpts)
		if err != nil {
			t.Fatal(err)
		}
		if !equalEncoded(got, want) {
			t.Errorf("%s: a diagonal Hessian changed the encoding", tc.id)
		}
		o.Hessian, o.LDLQBlock = h, 1
		plain := decodedWith(t, tc.id, tn, &plainOpts)
		comp := decodedWith(t, tc.id, tn, &o)
		lp, err := ldlq.ProxyLoss(h, cols, w, plain, rows)
		if err != nil {
			t.Fatal(err)
		}
		lc, err := ldlq.ProxyLoss(h, cols, w, comp, rows)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: output error with LDLQ %.4g, without %.4g (%.2f×)", tc.id, lc, lp, lc/lp)
		if lc > 0.5*lp {
			t.Errorf("%s: LDLQ output error %.4g is not well below plain %.4g", tc.id, lc, lp)
		}
	}
}

// decodedWith encodes tn with codec id and opts and decodes it.
func decodedWith(t *testing.T, id string, tn *codec.Tensor, opts *codec.EncodeOptions) []float32 {
	t.Helper()
	c, _ := codec.LookupEncoder(id)
	enc, err := c.Encode(tn, opts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeAll(t, id, tn, enc)
	if err != nil {
		t.Fatal(err)
	}
	return floats(t, got, tn.DType)
}

func TestEncodeErrors(t *testing.T) {
	good := gaussian("w", 1, []uint64{8, 8}, 1, format.F32)
	nan := f32Tensor("w", []uint64{2, 2}, []float32{1, float32(math.NaN()), 0, 0})
	inf := f32Tensor("w", []uint64{2, 2}, []float32{1, float32(math.Inf(-1)), 0, 0})
	ints := &codec.Tensor{Name: "i", DType: format.I32, Shape: []uint64{2, 2}, Data: make([]byte, 16)}
	short := &codec.Tensor{Name: "s", DType: format.F32, Shape: []uint64{2, 2}, Data: make([]byte, 15)}
	vec := gaussian("v", 1, []uint64{8}, 1, format.F32)
	tests := []struct {
		name string
		id   string
		t    *codec.Tensor
		opts codec.EncodeOptions
		want error
	}{
		{"NaN", scalar.ECSQ, nan, codec.EncodeOptions{}, chunk.ErrNonFinite},
		{"Inf", scalar.RTN, inf, codec.EncodeOptions{}, chunk.ErrNonFinite},
		{"Inf q4k", scalar.Q4K, inf, codec.EncodeOptions{}, chunk.ErrNonFinite},
		{"int dtype", scalar.ECSQ, ints, codec.EncodeOptions{}, chunk.ErrLayout},
		{"short data", scalar.ECSQ, short, codec.EncodeOptions{}, chunk.ErrLayout},
		{"transposed vector", scalar.ECSQ, vec, codec.EncodeOptions{Transposed: true}, chunk.ErrLayout},
		{"negative step", scalar.ECSQ, good, codec.EncodeOptions{Step: -1}, codec.ErrOptions},
		{"NaN step", scalar.ECSQ, good, codec.EncodeOptions{Step: math.NaN()}, codec.ErrOptions},
		{"huge step", scalar.ECSQ, good, codec.EncodeOptions{Step: 1e9}, codec.ErrOptions},
		{"few levels", scalar.ECSQ, good, codec.EncodeOptions{Levels: []uint8{1}}, chunk.ErrLevels},
		{"level 4", scalar.ECSQ, good, codec.EncodeOptions{Levels: []uint8{0, 0, 0, 0, 0, 0, 0, 4}}, chunk.ErrLevels},
		{"rtn 9 bits", scalar.RTN, good, codec.EncodeOptions{Bits: 9}, codec.ErrOptions},
		{"rtn 1 bit", scalar.RTN, good, codec.EncodeOptions{Bits: 1}, codec.ErrOptions},
		{"rtn negative group", scalar.RTN, good, codec.EncodeOptions{Group: -3}, codec.ErrOptions},
		{"few scale factors", scalar.ECSQ, good, codec.EncodeOptions{ScaleFactors: []float32{1}}, chunk.ErrFactors},
		{"zero scale factor", scalar.TCQ, good, codec.EncodeOptions{ScaleFactors: make([]float32, 8)}, chunk.ErrFactors},
		{"tcq NaN step", scalar.TCQ, good, codec.EncodeOptions{Step: math.NaN()}, codec.ErrOptions},
		{"q4k Hessian", scalar.Q4K, good, codec.EncodeOptions{Hessian: make([]float64, 64)}, ErrNoLDLQ},
		{"ecsq Hessian size", scalar.ECSQ, good, codec.EncodeOptions{Hessian: make([]float64, 3)}, codec.ErrOptions},
	}
	for _, tt := range tests {
		c, _ := codec.LookupEncoder(tt.id)
		_, err := c.Encode(tt.t, &tt.opts)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
		// Every bad option, and only a bad option, is a codec.ErrOptions.
		if want := errors.Is(tt.want, codec.ErrOptions); errors.Is(err, codec.ErrOptions) != want {
			t.Errorf("%s: errors.Is(%v, codec.ErrOptions) = %v, want %v", tt.name, err, !want, want)
		}
	}
}

// TestHugeAndTiny checks the defined behaviour at the ends of the fp16
// scale range: for ecsq an RMS above 65504 saturates the scale (and the
// levels saturate at ±2^30), a column too small for fp16 decodes as
// zeros; rtn saturates its scales; q4k refuses with ErrRange.
func TestHugeAndTiny(t *testing.T) {
	x := []float32{3e38, 1e-9, -2e38, -1e-9, 1e38, 0, 0, 1e-10}
	tn := f32Tensor("w", []uint64{4, 2}, x)
	for _, id := range []string{scalar.ECSQ, scalar.RTN, scalar.Q4K} {
		c, _ := codec.LookupEncoder(id)
		enc, err := c.Encode(tn, nil)
		if id == scalar.Q4K {
			if !errors.Is(err, ErrRange) {
				t.Errorf("q4k: %v, want ErrRange", err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		got, err := decodeAll(t, id, tn, enc)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		y := floats(t, got, format.F32)
		t.Logf("%s: %v", id, y)
		for i, v := range y {
			if math.IsNaN(float64(v)) {
				t.Errorf("%s: element %d decodes to NaN", id, i)
			}
		}
		if id == scalar.ECSQ {
			for i := 1; i < len(y); i += 2 {
				if y[i] != 0 {
					t.Errorf("ecsq: tiny column element %d decodes to %v, want 0", i, y[i])
				}
			}
			if y[0] <= 0 || y[2] >= 0 {
				t.Errorf("ecsq: saturated column decodes to %v", y[:6:6])
			}
		}
	}
}

func TestEmptyTensor(t *testing.T) {
	for _, id := range []string{scalar.ECSQ, scalar.RTN, scalar.Q4K} {
		for _, shape := range [][]uint64{{0, 5}, {5, 0}, {0}} {
			tn := &codec.Tensor{Name: "e", DType: format.F32, Shape: shape}
			c, _ := codec.LookupEncoder(id)
			enc, err := c.Encode(tn, nil)
			if err != nil {
				t.Fatalf("%s %v: %v", id, shape, err)
			}
			if len(enc.Groups) != 0 || len(enc.Aux) != 0 {
				t.Errorf("%s %v: %d groups, %d aux", id, shape, len(enc.Groups), len(enc.Aux))
			}
			if _, err := decodeAll(t, id, tn, enc); err != nil {
				t.Errorf("%s %v: %v", id, shape, err)
			}
		}
	}
}
