package convert

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nwcodec/nwc/calib"
	"github.com/nwcodec/nwc/codec"
	_ "github.com/nwcodec/nwc/codec/scalar"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/ldlq"
)

func TestColumnFactors(t *testing.T) {
	// Diagonal Hessian, mean diagonal 1 after normalization (damping
	// aside): a_j = s_j²·(H_jj + damp).
	h := &calib.Hessian{N: 4, Data: make([]float64, 16)}
	diag := []float64{1, 4, 0.25, 1e6}
	var mean float64
	for j, v := range diag {
		h.Data[j*4+j] = v
		mean += v / 4
	}
	colSq := []float64{1, 1, 1, 0}
	f, err := columnFactors(h, colSq, false)
	if err != nil {
		t.Fatal(err)
	}
	if f[3] != 1 {
		t.Errorf("zero column got factor %v, want 1", f[3])
	}
	a := func(j int) float64 { return diag[j]/mean + ldlq.DefaultDamp }
	gm := math.Cbrt(a(0) * a(1) * a(2))
	for j := range 3 {
		want := math.Sqrt(gm / a(j))
		if math.Abs(float64(f[j])-want) > 1e-6*want {
			t.Errorf("factor %d = %v, want %v", j, f[j], want)
		}
	}
	// An extreme column is clamped.
	colSq = []float64{1, 1, 1, 1}
	if f, err = columnFactors(h, colSq, false); err != nil {
		t.Fatal(err)
	}
	if f[3] != float32(math.Exp2(-MaxColumnShift)) {
		t.Errorf("extreme column factor %v, want %v", f[3], math.Exp2(-MaxColumnShift))
	}
	// With LDLQ the weights are the pivots, which for a diagonal Hessian
	// are the same regularized diagonal.
	g, err := columnFactors(h, colSq, true)
	if err != nil {
		t.Fatal(err)
	}
	for j := range g {
		if math.Abs(float64(g[j]-f[j])) > 1e-6 {
			t.Errorf("LDL factor %d = %v, diagonal %v", j, g[j], f[j])
		}
	}
}

// TestColumnStepsLowerOutputError codes a layer whose input channels differ
// in scale by two decades, as language-model activations do, with ecsq,
// tcq and nwc, with and without column factors, and requires the factors to lower the
// expected output error tr(ΔW H ΔWᵀ) by at least 1 dB at equal rate.
func TestColumnStepsLowerOutputError(t *testing.T) {
	const rows, cols, k = 128, 96, 2000
	r := rand.New(rand.NewPCG(5, 6))
	x := make([]float64, cols*k)
	for i := range cols {
		s := math.Pow(10, 2*r.Float64()-1)
		for j := range k {
			x[i*k+j] = r.NormFloat64() * s
		}
	}
	hd := make([]float64, cols*cols)
	for i := range cols {
		for j := range cols {
			var s float64
			for n := range k {
				s += x[i*k+n] * x[j*k+n]
			}
			hd[i*cols+j] = s / k
		}
	}
	w := make([]float32, rows*cols)
	data := make([]byte, 0, 4*len(w))
	for i := range w {
		w[i] = float32(r.NormFloat64() * 0.02)
		data = binary.LittleEndian.AppendUint32(data, math.Float32bits(w[i]))
	}
	tn := &codec.Tensor{Name: "w", DType: format.F32, Shape: []uint64{rows, cols}, Data: data}
	colSq, err := columnMeanSquares(tn, cols)
	if err != nil {
		t.Fatal(err)
	}
	f, err := columnFactors(&calib.Hessian{N: cols, Data: hd}, colSq, false)
	if err != nil {
		t.Fatal(err)
	}
	// score returns the output error scaled to 4 bits per weight by the
	// high-rate 6.02 dB per bit, so that small rate differences cancel.
	score := func(id string, factors []float32) float64 {
		cd, err := codec.LookupEncoder(id)
		if err != nil {
			t.Fatal(err)
		}
		o := &codec.EncodeOptions{Step: 0.25, ScaleFactors: factors}
		enc, err := cd.Encode(tn, o)
		if err != nil {
			t.Fatal(err)
		}
		var bytes int
		for _, g := range enc.Groups {
			bytes += len(g.Data)
		}
		got, err := roundTrip(id, tn, o)
		if err != nil {
			t.Fatal(err)
		}
		loss, err := ldlq.ProxyLoss(hd, cols, w, got, rows)
		if err != nil {
			t.Fatal(err)
		}
		bits := float64(8*bytes) / (rows * cols)
		return 10*math.Log10(loss) + 6.02*(bits-4)
	}
	for _, id := range []string{"ecsq", "tcq", "nwc"} {
		plain, weighted := score(id, nil), score(id, f)
		t.Logf("%s: output error at 4 bits: %.2f dB plain, %.2f dB with column factors", id, plain, weighted)
		if weighted > plain-1 {
			t.Errorf("%s: column factors gave %.2f dB, plain %.2f dB: want at least 1 dB less", id, weighted, plain)
		}
	}
}
