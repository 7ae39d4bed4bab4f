package nwcenc

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/neural"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/internal/shareddata"
	"github.com/nwcodec/nwc/safetensors"
)

// heavyTailed returns a rows×cols F32 tensor of llmValues.
func heavyTailed(rows, cols int, seed uint64) *codec.Tensor {
	data := make([]byte, 4*rows*cols)
	llmValues(rows, cols, rand.New(rand.NewPCG(seed, 7)), func(k int, v float64) {
		binary.LittleEndian.PutUint32(data[4*k:], math.Float32bits(float32(v)))
	})
	return &codec.Tensor{Name: "w", DType: format.F32, Shape: []uint64{uint64(rows), uint64(cols)}, Data: data}
}

// llmValues draws rows×cols weights shaped like those of a trained LLM and
// passes each to put with its row-major index: Student-t (ν = 4) values,
// so heavy tails; log-normal column and row scales; and one column in 200
// an outlier eight times as large.
func llmValues(rows, cols int, r *rand.Rand, put func(k int, v float64)) {
	colScale := make([]float64, cols)
	for j := range colScale {
		colScale[j] = 0.02 * math.Exp(0.5*r.NormFloat64())
		if r.IntN(200) == 0 {
			colScale[j] *= 8
		}
	}
	for i := range rows {
		rs := math.Exp(0.3 * r.NormFloat64())
		for j := range cols {
			// Student t with 4 degrees of freedom: z / sqrt(χ²₄/4).
			var chi float64
			for range 4 {
				g := r.NormFloat64()
				chi += g * g
			}
			put(i*cols+j, r.NormFloat64()/math.Sqrt(chi/4)*rs*colScale[j])
		}
	}
}

// LLMValues lets the external tests (the large-matrix benchmark) draw the
// same weights.
var LLMValues = llmValues

// sqnrAndRate decodes enc and returns its SQNR in dB against tt and its
// bits per weight (groups and aux sections).
func sqnrAndRate(t *testing.T, tt *codec.Tensor, enc *codec.Encoded) (sqnr, bpw float64) {
	t.Helper()
	d, err := codec.LookupDecoder(neural.ID)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := d.NewDecoder(specEntry(tt, enc), specEnv{enc})
	if err != nil {
		t.Fatal(err)
	}
	size := uint64(tt.DType.Size())
	out := make([]byte, len(tt.Data))
	var start uint64
	for i, g := range enc.Groups {
		if err := dec.DecodeGroup(i, g.Data, out[start*size:g.End*size]); err != nil {
			t.Fatal(err)
		}
		start = g.End
	}
	x, err := dtype.ToFloat32(nil, tt.Data, tt.DType)
	if err != nil {
		t.Fatal(err)
	}
	y, err := dtype.ToFloat32(nil, out, tt.DType)
	if err != nil {
		t.Fatal(err)
	}
	var sig, noise float64
	for i := range x {
		e := float64(x[i]) - float64(y[i])
		sig += float64(x[i]) * float64(x[i])
		noise += e * e
	}
	return 10 * math.Log10(sig/noise), 8 * float64(payload(enc)) / float64(len(x))
}

// TestSampledChoiceQuality checks that choosing the coding on a sample of
// a large matrix loses nothing that matters against choosing on all of
// it: the file's SQNR is within 0.05 dB of the whole-matrix choice's at
// the same rate from 3 to 6 bits per weight, and within 0.15 dB below,
// where the learned transform and rounding are near ties that a sample
// can decide either way (on stories15M's embeddings at about 1.8 and 2.6
// bits per weight the whole matrix picks the learned transform, the
// sample rounding, 0.10 dB worse). The whole-matrix choice's SQNR is
// interpolated on its local rate–distortion slope (measured with a 6 %
// coarser step). The matrices are LLM-like weights and (unless -short)
// the first 8192 rows of stories15M's token embeddings.
func TestSampledChoiceQuality(t *testing.T) {
	if raceEnabled {
		t.Skip("a single-goroutine quality check, minutes under the race detector; the run without -race covers it")
	}
	type matrix struct {
		name string
		t    *codec.Tensor
	}
	ms := []matrix{{"heavy-tailed 1024×768", heavyTailed(1024, 768, 5)}}
	if !testing.Short() {
		path := shareddata.Path(t, "stories15M", "stories15M.safetensors")
		f, err := safetensors.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		info, ok := f.Tensor("tok_embeddings.weight")
		if !ok || info.DType != format.F32 || len(info.Shape) != 2 || info.Shape[0] < 8192 {
			t.Fatalf("stories15M tok_embeddings.weight: %+v, want an F32 matrix of at least 8192 rows", info)
		}
		b, err := f.ReadTensor(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		cols := uint64(info.Shape[1])
		ms = append(ms, matrix{"stories15M tok_embeddings[:8192]", &codec.Tensor{Name: info.Name, DType: format.F32, Shape: []uint64{8192, cols}, Data: b[:8192*cols*4]}})
	}
	sampled, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	whole := *sampled
	whole.wholeChoice = true
	code := func(e *Encoder, m matrix, step float64) (sqnr, bpw float64, k string) {
		enc, err := e.Encode(m.t, &codec.EncodeOptions{Step: step})
		if err != nil {
			t.Fatal(err)
		}
		sqnr, bpw = sqnrAndRate(t, m.t, enc)
		return sqnr, bpw, kind(enc)
	}
	for _, m := range ms {
		for _, step := range []float64{1.2, 0.7, 0.5, 0.25, 0.12, 0.06} {
			qs, rs, ks := code(sampled, m, step)
			q1, r1, k1 := code(&whole, m, step)
			q2, r2, _ := code(&whole, m, step*1.06)
			at := q1 + (q1-q2)/(r1-r2)*(rs-r1)
			t.Logf("%s step %v: sampled %.4f b/w %.3f dB (%s); whole %.4f b/w %.3f dB (%s), %.3f dB at %.4f b/w: %+.4f dB",
				m.name, step, rs, qs, ks, r1, q1, k1, at, rs, qs-at)
			tol := 0.05
			if rs < 3 {
				tol = 0.15
			}
			if qs-at < -tol {
				t.Errorf("%s step %v: choosing on a sample loses %.3f dB at equal rate", m.name, step, at-qs)
			}
		}
	}
}

// kind names the coding an encoding chose.
func kind(e *codec.Encoded) string {
	p, err := neural.ParseParams(e.Params)
	switch {
	case err != nil:
		return err.Error()
	case !p.Plain:
		return "learned"
	case p.Trellis:
		return "trellis"
	}
	return "rounding"
}
