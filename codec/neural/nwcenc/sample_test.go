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

// heavyTailed returns a rows×cols F32 tensor of Student-t (ν = 4) values
// with log-normal column and row scales and rare outlier columns, like
// an LLM's weights.
func heavyTailed(rows, cols int, seed uint64) *codec.Tensor {
	r := rand.New(rand.NewPCG(seed, 7))
	cs := make([]float64, cols)
	for j := range cs {
		cs[j] = 0.02 * math.Exp(0.5*r.NormFloat64())
		if r.IntN(200) == 0 {
			cs[j] *= 8
		}
	}
	data := make([]byte, 4*rows*cols)
	for i := range rows {
		rs := math.Exp(0.3 * r.NormFloat64())
		for j := range cols {
			var chi float64
			for range 4 {
				g := r.NormFloat64()
				chi += g * g
			}
			v := float32(r.NormFloat64() / math.Sqrt(chi/4) * rs * cs[j])
			binary.LittleEndian.PutUint32(data[4*(i*cols+j):], math.Float32bits(v))
		}
	}
	return &codec.Tensor{Name: "w", DType: format.F32, Shape: []uint64{uint64(rows), uint64(cols)}, Data: data}
}

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
// it: at equal rate (6.02 dB per bit) the file's SQNR is within 0.05 dB,
// from about 2 to 6 bits per weight, on LLM-like weights and on
// stories15M's token embeddings.
func TestSampledChoiceQuality(t *testing.T) {
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
		if !ok {
			t.Fatal("stories15M has no tok_embeddings.weight")
		}
		b, err := f.ReadTensor(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, matrix{"stories15M tok_embeddings", &codec.Tensor{Name: info.Name, DType: info.DType, Shape: []uint64{uint64(info.Shape[0]), uint64(info.Shape[1])}, Data: b}})
	}
	sampled, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	whole := *sampled
	whole.wholeChoice = true
	for _, m := range ms {
		for _, step := range []float64{1.2, 0.5, 0.25, 0.12, 0.06} {
			opts := &codec.EncodeOptions{Step: step}
			es, err := sampled.Encode(m.t, opts)
			if err != nil {
				t.Fatal(err)
			}
			ew, err := whole.Encode(m.t, opts)
			if err != nil {
				t.Fatal(err)
			}
			qs, rs := sqnrAndRate(t, m.t, es)
			qw, rw := sqnrAndRate(t, m.t, ew)
			gain := qs - qw - 6.02*(rs-rw)
			t.Logf("%s step %v: sampled %.4f b/w %.3f dB (%s), whole %.4f b/w %.3f dB (%s): %+.4f dB at equal rate",
				m.name, step, rs, qs, kind(es), rw, qw, kind(ew), gain)
			if gain < -0.05 {
				t.Errorf("%s step %v: choosing on a sample loses %.3f dB at equal rate", m.name, step, -gain)
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
