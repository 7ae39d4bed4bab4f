package llama

import (
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/nwcodec/nwc/internal/shareddata"
	"github.com/nwcodec/nwc/tokenizer"
)

var update = flag.Bool("update", false, "rewrite testdata fixtures")

// tinyConfig is a model small enough for exhaustive tests that still has
// several layers, grouped-query attention and multi-pair heads.
var tinyConfig = Config{
	Dim: 8, HiddenDim: 12, NLayers: 2, NHeads: 2, NKVHeads: 1,
	VocabSize: 16, SeqLen: 16, NormEps: DefaultNormEps, RopeTheta: DefaultRopeTheta,
	TiedEmbeddings: true,
}

// mapSource is an in-memory WeightSource.
type mapSource struct {
	data   map[string][]float32
	shapes map[string][]int64
}

func (s mapSource) Tensor(name string) ([]float32, []int64, error) {
	d, ok := s.data[name]
	if !ok {
		return nil, nil, fmt.Errorf("mapSource: %w: %s", ErrNotFound, name)
	}
	return d, s.shapes[name], nil
}

// randomSource returns deterministic random weights for cfg.
func randomSource(cfg Config, seed uint64) mapSource {
	r := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	skel := newModel(cfg)
	src := mapSource{data: map[string][]float32{}, shapes: map[string][]int64{}}
	for _, name := range skel.names {
		shape := skel.shapes[name]
		d := make([]float32, numel(shape))
		for i := range d {
			// Uniform in [-1, 1) from the raw PCG stream, whose output
			// math/rand/v2 keeps stable, unlike its derived distributions.
			u := float32(r.Uint64()>>40)/(1<<23) - 1
			if len(shape) == 1 {
				d[i] = 1 + float32(0.3*u) // conversion rounds: no FMA, same bits everywhere
			} else {
				d[i] = 1.7 * u / float32(math.Sqrt(float64(shape[1])))
			}
		}
		src.data[name] = d
		src.shapes[name] = shape
	}
	return src
}

func randomModel(t testing.TB, cfg Config, seed uint64) *Model {
	t.Helper()
	m, err := New(cfg, randomSource(cfg, seed))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

type stories struct {
	model *Model
	tok   *tokenizer.Tokenizer
	docs  [][]int
}

func loadStories(t testing.TB) stories {
	t.Helper()
	// All three files are required before any is loaded.
	binPath := shareddata.Path(t, "stories260K", "stories260K.bin")
	tokPath := shareddata.Path(t, "stories260K", "tok512.bin")
	textPath := shareddata.Path(t, "text", "tinystories-dev.txt")
	m, err := LoadBin(binPath)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.Load(tokPath)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := LoadDocs(textPath, tok)
	if err != nil {
		t.Fatal(err)
	}
	return stories{m, tok, docs}
}

// refForward is an independent, deliberately plain float64 transcription
// of run.c's forward(): one token at a time, no batching, no caching
// tricks, rotary angles computed inline. It returns the logits after every
// token of seq.
func refForward(m *Model, seq []int) [][]float64 {
	c := m.cfg
	hd := c.HeadDim()
	kvDim := c.KVDim()
	w := m.weights
	f64 := func(v []float32) []float64 {
		o := make([]float64, len(v))
		for i, x := range v {
			o[i] = float64(x)
		}
		return o
	}
	matvec := func(name string, x []float64) []float64 {
		W := w[name]
		in := len(x)
		out := make([]float64, len(W)/in)
		for o := range out {
			for i := range in {
				out[o] += float64(W[o*in+i]) * x[i]
			}
		}
		return out
	}
	rms := func(x []float64, name string) []float64 {
		var ss float64
		for _, v := range x {
			ss += v * v
		}
		inv := 1 / math.Sqrt(ss/float64(len(x))+float64(c.NormEps))
		o := make([]float64, len(x))
		for i, v := range x {
			o[i] = float64(w[name][i]) * v * inv
		}
		return o
	}
	keys := make([][][]float64, c.NLayers)
	vals := make([][][]float64, c.NLayers)
	var out [][]float64
	for pos, tok := range seq {
		x := f64(m.emb[tok*c.Dim : (tok+1)*c.Dim])
		for l := range c.NLayers {
			xb := rms(x, LayerName(l, "attention_norm"))
			q := matvec(LayerName(l, "attention.wq"), xb)
			k := matvec(LayerName(l, "attention.wk"), xb)
			v := matvec(LayerName(l, "attention.wv"), xb)
			for i := 0; i < c.Dim; i += 2 {
				freq := math.Pow(c.RopeTheta, -float64(i%hd)/float64(hd))
				cr, ci := math.Cos(float64(pos)*freq), math.Sin(float64(pos)*freq)
				q[i], q[i+1] = q[i]*cr-q[i+1]*ci, q[i]*ci+q[i+1]*cr
				if i < kvDim {
					k[i], k[i+1] = k[i]*cr-k[i+1]*ci, k[i]*ci+k[i+1]*cr
				}
			}
			keys[l] = append(keys[l], k)
			vals[l] = append(vals[l], v)
			att := make([]float64, c.Dim)
			for h := range c.NHeads {
				g := h / (c.NHeads / c.NKVHeads)
				sc := make([]float64, pos+1)
				maxv := math.Inf(-1)
				for p := range sc {
					for i := range hd {
						sc[p] += q[h*hd+i] * keys[l][p][g*hd+i]
					}
					sc[p] /= math.Sqrt(float64(hd))
					maxv = math.Max(maxv, sc[p])
				}
				var sum float64
				for p := range sc {
					sc[p] = math.Exp(sc[p] - maxv)
					sum += sc[p]
				}
				for p := range sc {
					for i := range hd {
						att[h*hd+i] += sc[p] / sum * vals[l][p][g*hd+i]
					}
				}
			}
			for i, v := range matvec(LayerName(l, "attention.wo"), att) {
				x[i] += v
			}
			xb = rms(x, LayerName(l, "ffn_norm"))
			h1 := matvec(LayerName(l, "feed_forward.w1"), xb)
			h3 := matvec(LayerName(l, "feed_forward.w3"), xb)
			for i := range h1 {
				h1[i] = h1[i] / (1 + math.Exp(-h1[i])) * h3[i]
			}
			for i, v := range matvec(LayerName(l, "feed_forward.w2"), h1) {
				x[i] += v
			}
		}
		x = rms(x, NameNorm)
		cls := NameOutput
		if c.TiedEmbeddings {
			cls = NameEmbedding
		}
		out = append(out, matvec(cls, x))
	}
	return out
}

// TestUpdateFixtures rewrites testdata/tiny.bin when run with -update and
// otherwise checks that the committed fixture is what the generator makes.
func TestUpdateFixtures(t *testing.T) {
	m := randomModel(t, tinyConfig, 1)
	var buf bytesBuffer
	if err := WriteBin(&buf, m); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "tiny.bin")
	if *update {
		if err := os.WriteFile(path, buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(buf) {
		t.Fatalf("%s is stale; run go test -run TestUpdateFixtures -update", path)
	}
}

type bytesBuffer []byte

func (b *bytesBuffer) Write(p []byte) (int, error) {
	*b = append(*b, p...)
	return len(p), nil
}
