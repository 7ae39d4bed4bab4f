package nwcenc

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
)

// llmTensor returns a rows×cols tensor of LLMValues in dtype dt.
func llmTensor(t *testing.T, rows, cols int, dt format.DType, seed uint64) *codec.Tensor {
	t.Helper()
	m := make([]float32, rows*cols)
	LLMValues(rows, cols, rand.New(rand.NewPCG(seed, 0x11)), func(k int, v float64) { m[k] = float32(v) })
	data, err := dtype.FromFloat32(nil, m, dt)
	if err != nil {
		t.Fatal(err)
	}
	return &codec.Tensor{Name: "w", DType: dt, Shape: []uint64{uint64(rows), uint64(cols)}, Data: data}
}

// TestStreamedMatchesWhole checks that streaming a large matrix (scales,
// sample and coding from row slabs, latents packed) writes exactly what
// loading it whole does, on every coding path, in one slab or many, with ragged chunks,
// groups of one chunk row to several slabs' worth, levels, factors,
// other dtypes and wide latents.
func TestStreamedMatchesWhole(t *testing.T) {
	levels := make([]uint8, 300)
	factors := make([]float32, 300)
	for j := range levels {
		levels[j] = uint8(j % 4 / 3 * (j % 3))
		factors[j] = 0.5 + float32(j%7)/7
	}
	type tc struct {
		name       string
		rows, cols int
		dt         format.DType
		force      int
		round      bool
		opts       codec.EncodeOptions
	}
	cases := []tc{
		{"trellis", 2003, 300, format.BF16, forcePlain, false, codec.EncodeOptions{Step: 0.25, GroupBytes: 64 << 10}},
		{"round", 2003, 300, format.BF16, forcePlain, true, codec.EncodeOptions{Step: 0.25}},
		{"learned", 2003, 300, format.BF16, forceLearned, false, codec.EncodeOptions{Step: 0.3, BlobRef: true}},
		{"auto-levels-factors", 2000, 300, format.F32, forceAuto, false, codec.EncodeOptions{Step: 0.3, Levels: levels, ScaleFactors: factors, GroupBytes: 8 << 10}},
		{"round-levels", 1995, 300, format.F16, forcePlain, true, codec.EncodeOptions{Step: 0.2, Levels: levels, GroupBytes: 4 << 10}},
		{"fine-wide-latents", 1200, 300, format.BF16, forcePlain, true, codec.EncodeOptions{Step: 1e-3}},
		{"fine-wider-latents", 1200, 300, format.BF16, forcePlain, false, codec.EncodeOptions{Step: 2e-5}},
		{"one-slab", 2003, 300, format.BF16, forceAuto, false, codec.EncodeOptions{Step: 0.3, NoBlob: true}},
		{"tall", 40000, 16, format.BF16, forcePlain, false, codec.EncodeOptions{Step: 0.4, GroupBytes: 512}},
	}
	if raceEnabled {
		// Six minutes under the race detector for all: these three run
		// the streamed encoder's concurrent paths (trellis, rounding
		// with levels, the learned transform).
		cases = []tc{cases[0], cases[2], cases[4]}
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			// Slabs of a few groups, except in one case.
			defer func(n int) { slabWeights = n }(slabWeights)
			if k.name != "one-slab" {
				slabWeights = 1 << 16
			}
			c := forced(t, k.force)
			c.roundPlain = k.round
			tn := llmTensor(t, k.rows, k.cols, k.dt, 7)
			l, err := chunk.NewLayout(tn.DType, tn.Shape, false)
			if err != nil {
				t.Fatal(err)
			}
			if !c.streams(l, &k.opts) {
				t.Fatal("the matrix does not stream")
			}
			var got [2]*codec.Encoded
			for i, whole := range []bool{true, false} {
				c.loadWhole = whole
				o := k.opts
				o.Jobs = 1 + 2*i
				if got[i], err = c.Encode(tn, &o); err != nil {
					t.Fatal(err)
				}
			}
			if d := cmp.Diff(got[0], got[1]); d != "" {
				t.Errorf("streaming differs from loading whole (-whole +streamed):\n%s", d)
			}
		})
	}
}

// TestStreamedNonFinite checks that a streamed matrix with a NaN or an
// infinity is refused as chunk.Load refuses it.
func TestStreamedNonFinite(t *testing.T) {
	c := forced(t, forceAuto)
	for _, v := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
		tn := llmTensor(t, 2000, 300, format.F32, 3)
		binary.LittleEndian.PutUint32(tn.Data[4*123456:], math.Float32bits(v))
		_, err := c.Encode(tn, &codec.EncodeOptions{Step: 0.3})
		if !errors.Is(err, chunk.ErrNonFinite) {
			t.Errorf("%v: %v, want ErrNonFinite", v, err)
		}
	}
}
