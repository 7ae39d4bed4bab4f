package nwcenc_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/neural/nwcenc" // registers the nwc encoder too
	_ "github.com/nwcodec/nwc/codec/scalar/scalarenc"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
)

// largeShapes are the matrices of a 1.1 B Llama-shaped model (TinyLlama):
// rows are the output dimension.
var largeShapes = [][2]int{
	{2048, 2048},  // wq, wo
	{256, 2048},   // wk, wv (grouped-query attention)
	{5632, 2048},  // w1, w3
	{2048, 5632},  // w2
	{32000, 2048}, // embeddings, output
}

// llmLike returns a BF16 tensor of rows×cols nwcenc.LLMValues. It is
// deterministic in seed.
func llmLike(rows, cols int, seed uint64) *codec.Tensor {
	data := make([]byte, 2*rows*cols)
	nwcenc.LLMValues(rows, cols, rand.New(rand.NewPCG(seed, 0x11)), func(k int, v float64) {
		binary.LittleEndian.PutUint16(data[2*k:], dtype.BF16FromFloat32(float32(v)))
	})
	return &codec.Tensor{Name: "w", DType: format.BF16, Shape: []uint64{uint64(rows), uint64(cols)}, Data: data}
}

// BenchmarkEncodeLarge encodes the matrices of a 1.1 B model at about 4
// bits per weight with each lossy codec, on 1 and 2 goroutines. Run one
// shape at a time, e.g. -bench 'EncodeLarge/nwc/2048x2048/j1'.
func BenchmarkEncodeLarge(b *testing.B) {
	for _, id := range []string{"nwc", "tcq", "ecsq", "rtn"} {
		for _, s := range largeShapes {
			for _, jobs := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/%dx%d/j%d", id, s[0], s[1], jobs), func(b *testing.B) {
					tn := llmLike(s[0], s[1], 1)
					c, err := codec.LookupEncoder(id)
					if err != nil {
						b.Fatal(err)
					}
					opts := &codec.EncodeOptions{Step: 0.25, Bits: 4, Jobs: jobs}
					b.SetBytes(int64(len(tn.Data)))
					var cpu time.Duration
					for b.Loop() {
						c0 := cpuTime()
						if _, err := c.Encode(tn, opts); err != nil {
							b.Fatal(err)
						}
						cpu += cpuTime() - c0
					}
					w := float64(b.N) * float64(tn.NumElements()) / 1e6
					b.ReportMetric(w/b.Elapsed().Seconds(), "Mweights/s")
					if cpu > 0 {
						// Weights per second of CPU time: the rate on one
						// otherwise idle core, as far as CPU time tells.
						b.ReportMetric(w/cpu.Seconds(), "Mweights/cpu-s")
					}
				})
			}
		}
	}
}

// TestEncodeJobsIdentical checks that every lossy codec writes the same
// bytes whatever the number of goroutines it may use, on matrices large
// enough to be coded in parallel parts and to have the nwc encoder decide
// from a sample, with and without importance levels, column factors,
// transposition and a Hessian.
func TestEncodeJobsIdentical(t *testing.T) {
	big := llmLike(700, 900, 2)
	tall := llmLike(5000, 130, 4) // nwc samples runs of its rows
	ragged := llmLike(203, 130, 3)
	levels := make([]uint8, 130)
	factors := make([]float32, 130)
	for j := range levels {
		levels[j] = uint8(j % 4 / 3 * (j % 3))
		factors[j] = 0.5 + float32(j%7)/7
	}
	hess := make([]float64, 130*130)
	for i := range 130 {
		for j := range 130 {
			hess[i*130+j] = 1 / (1 + math.Abs(float64(i-j)))
		}
		hess[i*130+i] += 1
	}
	type tc struct {
		name string
		t    *codec.Tensor
		opts codec.EncodeOptions
	}
	cases := []tc{
		{"big", big, codec.EncodeOptions{Step: 0.25, Bits: 4, GroupBytes: 64 << 10}},
		{"big-coarse", big, codec.EncodeOptions{Step: 1.5, Bits: 2}},
		{"tall", tall, codec.EncodeOptions{Step: 0.3, Bits: 4, GroupBytes: 32 << 10}},
		{"ragged-levels", ragged, codec.EncodeOptions{Step: 0.3, Bits: 3, Levels: levels, ScaleFactors: factors, GroupBytes: 4 << 10}},
		{"ragged-transposed", ragged, codec.EncodeOptions{Step: 0.2, Bits: 5, Transposed: true}},
		{"hessian", ragged, codec.EncodeOptions{Step: 0.25, Bits: 4, Hessian: hess, LDLQBlock: 32, GroupBytes: 8 << 10}},
	}
	for _, id := range []string{"nwc", "tcq", "ecsq", "rtn"} {
		c, err := codec.LookupEncoder(id)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range cases {
			if id == "rtn" && k.opts.Levels != nil {
				continue // rtn takes no levels
			}
			t.Run(id+"/"+k.name, func(t *testing.T) {
				var got [2]*codec.Encoded
				for i, jobs := range []int{1, 3} {
					o := k.opts
					o.Jobs = jobs
					if got[i], err = c.Encode(k.t, &o); err != nil {
						t.Fatal(err)
					}
				}
				if d := cmp.Diff(got[0], got[1]); d != "" {
					t.Errorf("1 and 3 goroutines differ (-1 +3):\n%s", d)
				}
			})
		}
	}
}

// TestReleaseInput checks that the encoders that honour
// EncodeOptions.ReleaseInput drop the tensor's data and still write the
// same bytes, on a matrix large enough for nwc to decide from a sample
// (and so to normalize it in place), with a ragged last chunk, and
// transposed (where a ragged matrix has no room for the padding).
func TestReleaseInput(t *testing.T) {
	for _, id := range []string{"nwc", "tcq", "ecsq", "rtn", "q4k"} {
		c, err := codec.LookupEncoder(id)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range []struct {
			name       string
			rows, cols int
			transposed bool
		}{
			{"whole-chunks", 1024, 768, false},
			{"ragged", 1000, 768, false},
			{"transposed", 768, 1024, true},
			{"transposed-ragged", 760, 1000, true}, // nwc normalizes into a new array
		} {
			t.Run(id+"/"+k.name, func(t *testing.T) {
				opts := codec.EncodeOptions{Step: 0.3, Bits: 4, Transposed: k.transposed, GroupBytes: 64 << 10}
				want, err := c.Encode(llmLike(k.rows, k.cols, 6), &opts)
				if err != nil {
					t.Fatal(err)
				}
				tn := llmLike(k.rows, k.cols, 6)
				opts.ReleaseInput = true
				got, err := c.Encode(tn, &opts)
				if err != nil {
					t.Fatal(err)
				}
				if tn.Data != nil {
					t.Error("the tensor's data was kept")
				}
				if d := cmp.Diff(want, got); d != "" {
					t.Errorf("ReleaseInput changes the encoding (-without +with):\n%s", d)
				}
			})
		}
	}
}
