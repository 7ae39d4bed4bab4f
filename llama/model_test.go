package llama

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestNewErrors(t *testing.T) {
	base := randomSource(tinyConfig, 30)
	edit := func(f func(s mapSource)) mapSource {
		s := mapSource{data: map[string][]float32{}, shapes: map[string][]int64{}}
		for k, v := range base.data {
			s.data[k] = v
			s.shapes[k] = base.shapes[k]
		}
		f(s)
		return s
	}
	wq := LayerName(1, "attention.wq")
	untied := tinyConfig
	untied.TiedEmbeddings = false
	bad := tinyConfig
	bad.NHeads = 3
	tests := []struct {
		name string
		cfg  Config
		src  WeightSource
		want error
	}{
		{"missing", tinyConfig, edit(func(s mapSource) { delete(s.data, wq) }), ErrNotFound},
		{"missing-output", untied, base, ErrNotFound},
		{"shape", tinyConfig, edit(func(s mapSource) { s.shapes[wq] = []int64{8, 4, 2} }), ErrShape},
		{"transposed", tinyConfig, edit(func(s mapSource) {
			n := LayerName(0, "feed_forward.w1")
			s.shapes[n] = []int64{8, 12}
		}), ErrShape},
		{"short-data", tinyConfig, edit(func(s mapSource) { s.data[wq] = s.data[wq][:10] }), ErrShape},
		{"config", bad, base, ErrConfig},
		{"source-error", tinyConfig, errSource{}, errBroken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, tt.src)
			if !errors.Is(err, tt.want) {
				t.Fatalf("New() error = %v, want %v", err, tt.want)
			}
			var se *ShapeError
			if errors.As(err, &se) && !strings.Contains(se.Error(), se.Name) {
				t.Errorf("ShapeError message %q lacks the tensor name", se.Error())
			}
		})
	}
}

var errBroken = errors.New("broken source")

type errSource struct{}

func (errSource) Tensor(string) ([]float32, []int64, error) { return nil, nil, errBroken }

// hfSource renames a llama2.c source to Hugging Face names and permutes
// the query and key rows for rotate-half rotary embeddings, as the
// Hugging Face conversion script does.
func hfSource(cfg Config, src mapSource) mapSource {
	out := mapSource{data: map[string][]float32{}, shapes: map[string][]int64{}}
	hd := cfg.HeadDim()
	for name, data := range src.data {
		shape := src.shapes[name]
		if strings.HasSuffix(name, ".wq.weight") || strings.HasSuffix(name, ".wk.weight") {
			rows, cols := int(shape[0]), int(shape[1])
			perm := make([]float32, len(data))
			for h := 0; h < rows/hd; h++ {
				for j := 0; j < hd/2; j++ {
					for k := range 2 {
						copy(perm[(h*hd+k*hd/2+j)*cols:][:cols], data[(h*hd+2*j+k)*cols:][:cols])
					}
				}
			}
			data = perm
		}
		out.data[hfName(name)] = data
		out.shapes[hfName(name)] = shape
	}
	return out
}

func TestNewHuggingFaceNames(t *testing.T) {
	cfg := tinyConfig
	cfg.TiedEmbeddings = false
	src := randomSource(cfg, 31)
	hf := hfSource(cfg, src)
	for _, n := range []string{"model.embed_tokens.weight", "model.layers.1.self_attn.k_proj.weight", "model.layers.0.mlp.down_proj.weight", "lm_head.weight", "model.norm.weight"} {
		if _, ok := hf.data[n]; !ok {
			t.Fatalf("hfName produced no %s", n)
		}
	}
	want, err := New(cfg, src)
	if err != nil {
		t.Fatal(err)
	}
	got, err := New(cfg, hf)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range want.Names() {
		if !slices.Equal(got.weights[name], want.weights[name]) {
			t.Errorf("%s differs after loading Hugging Face names", name)
		}
	}
}

func TestModelWeights(t *testing.T) {
	m := randomModel(t, tinyConfig, 32)
	names := m.Names()
	if len(names) != 2+9*tinyConfig.NLayers || names[0] != NameEmbedding || names[len(names)-1] != NameNorm {
		t.Fatalf("Names() = %v", names)
	}
	w := m.Weights()
	if len(w) != len(names) {
		t.Errorf("Weights() has %d tensors, want %d", len(w), len(names))
	}
	seq := []int{1, 5, 9}
	before, _ := m.NewState().Forward(seq)
	before = slices.Clone(before)
	c := m.Clone()

	// Writes through Weights change the model; the clone keeps its own.
	wo := LayerName(0, "attention.wo")
	for i := range w[wo] {
		w[wo][i] = 0
	}
	after, _ := m.NewState().Forward(seq)
	if slices.Equal(after, before) {
		t.Error("zeroing wo through Weights() did not change the logits")
	}
	cl, _ := c.NewState().Forward(seq)
	if !slices.Equal(cl, before) {
		t.Error("Clone shares storage with the original")
	}

	// SetWeight copies and checks the length.
	cw, _, err := c.Tensor(wo)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetWeight(wo, cw); err != nil {
		t.Fatal(err)
	}
	restored, _ := m.NewState().Forward(seq)
	if !slices.Equal(restored, before) {
		t.Error("SetWeight did not restore the logits")
	}
	if err := m.SetWeight(wo, cw[1:]); !errors.Is(err, ErrShape) {
		t.Errorf("SetWeight(short) = %v, want ErrShape", err)
	}
	if err := m.SetWeight("nope", cw); !errors.Is(err, ErrNotFound) {
		t.Errorf("SetWeight(unknown) = %v, want ErrNotFound", err)
	}
	if _, _, err := m.Tensor(NameOutput); !errors.Is(err, ErrNotFound) {
		t.Errorf("tied model Tensor(output) = %v, want ErrNotFound", err)
	}

	// A Model is a WeightSource: New from it gives the same model.
	m2, err := New(m.Config(), m)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := m2.NewState().Forward(seq)
	if !slices.Equal(again, before) {
		t.Error("New(cfg, model) differs from the model")
	}
}

func TestHessianKey(t *testing.T) {
	untied := tinyConfig
	untied.TiedEmbeddings = false
	tied := randomModel(t, tinyConfig, 33)
	sep := randomModel(t, untied, 33)
	tests := []struct {
		m    *Model
		name string
		want string
	}{
		{tied, LayerName(1, "attention.wq"), LayerName(1, "attention.wq")},
		{tied, LayerName(1, "attention.wk"), LayerName(1, "attention.wq")},
		{tied, LayerName(0, "attention.wv"), LayerName(0, "attention.wq")},
		{tied, LayerName(0, "attention.wo"), LayerName(0, "attention.wo")},
		{tied, LayerName(0, "feed_forward.w1"), LayerName(0, "feed_forward.w1")},
		{tied, LayerName(0, "feed_forward.w3"), LayerName(0, "feed_forward.w1")},
		{tied, LayerName(1, "feed_forward.w2"), LayerName(1, "feed_forward.w2")},
		{tied, NameEmbedding, NameEmbedding},
		{sep, NameEmbedding, ""},
		{sep, NameOutput, NameOutput},
		{tied, NameOutput, ""},
		{tied, NameNorm, ""},
		{tied, LayerName(0, "ffn_norm"), ""},
		{tied, LayerName(7, "attention.wq"), ""},
	}
	for _, tt := range tests {
		got, ok := tt.m.HessianKey(tt.name)
		if got != tt.want || ok != (tt.want != "") {
			t.Errorf("HessianKey(%q) tied=%v = %q, %v; want %q", tt.name, tt.m.cfg.TiedEmbeddings, got, ok, tt.want)
		}
	}
}

func ExampleLayerName() {
	fmt.Println(LayerName(3, "feed_forward.w2"))
	// Output: layers.3.feed_forward.w2.weight
}

// TestCheckpointNames maps a Hugging Face model's tensors to and from
// the checkpoint's names, and puts checkpoint-layout data back in the
// model's own row order.
func TestCheckpointNames(t *testing.T) {
	cfg := tinyConfig
	cfg.TiedEmbeddings = false
	src := randomSource(cfg, 32)
	hf := hfSource(cfg, src)
	for _, tc := range []struct {
		label string
		src   mapSource
	}{{"llama2.c", src}, {"Hugging Face", hf}} {
		m, err := New(cfg, tc.src)
		if err != nil {
			t.Fatal(err)
		}
		zeroed := m.Clone()
		for _, w := range zeroed.Weights() {
			clear(w)
		}
		for _, name := range m.Names() {
			ckpt := m.CheckpointName(name)
			if _, ok := tc.src.data[ckpt]; !ok {
				t.Fatalf("%s: CheckpointName(%s) = %s, not in the checkpoint", tc.label, name, ckpt)
			}
			if back, ok := m.ModelName(ckpt); !ok || back != name {
				t.Errorf("%s: ModelName(%s) = %q, %v; want %s", tc.label, ckpt, back, ok, name)
			}
			if err := zeroed.SetCheckpointWeight(ckpt, tc.src.data[ckpt]); err != nil {
				t.Fatal(err)
			}
		}
		for _, name := range m.Names() {
			if !slices.Equal(zeroed.weights[name], m.weights[name]) {
				t.Errorf("%s: %s set from the checkpoint's data differs from the loaded model", tc.label, name)
			}
		}
		if _, ok := m.ModelName("no.such.weight"); ok {
			t.Errorf("%s: ModelName of an unknown name succeeded", tc.label)
		}
		if err := m.SetCheckpointWeight("no.such.weight", nil); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s: SetCheckpointWeight of an unknown name: %v, want ErrNotFound", tc.label, err)
		}
		if err := m.SetCheckpointWeight(m.CheckpointName(LayerName(0, "attention.wq")), []float32{1}); err == nil {
			t.Errorf("%s: SetCheckpointWeight with the wrong length: no error", tc.label)
		}
	}
}

// checkedSource is a mapSource that is also a TensorChecker, so New finds
// the names without reading.
type checkedSource struct{ mapSource }

func (s checkedSource) HasTensor(name string) bool {
	_, ok := s.data[name]
	return ok
}

// TestNewEmbeddingNames loads every way a checkpoint may store its token
// embedding and classifier: llama2.c or Hugging Face names, tied models
// keeping either copy of the shared matrix (or both), untied models both,
// with and without a TensorChecker.
func TestNewEmbeddingNames(t *testing.T) {
	untied := tinyConfig
	untied.TiedEmbeddings = false
	tiedSrc := randomSource(tinyConfig, 33)
	untiedSrc := randomSource(untied, 34)
	// variant renames src to the scheme's names and stores the embedding
	// and classifier under exactly the names in keep (a tied model's
	// classifier being a copy of its embedding).
	variant := func(cfg Config, src mapSource, hf bool, keep ...string) mapSource {
		if hf {
			src = hfSource(cfg, src)
		}
		out := mapSource{data: map[string][]float32{}, shapes: map[string][]int64{}}
		emb, cls := NameEmbedding, NameOutput
		if hf {
			emb, cls = hfEmbedding, hfOutput
		}
		for k, v := range src.data {
			if k != emb && k != cls {
				out.data[k], out.shapes[k] = v, src.shapes[k]
			}
		}
		for _, k := range keep {
			from := k
			if _, ok := src.data[k]; !ok { // a tied classifier: the embedding's copy
				from = emb
			}
			out.data[k], out.shapes[k] = src.data[from], src.shapes[from]
		}
		return out
	}
	tests := []struct {
		name     string
		cfg      Config
		src      mapSource
		wantEmb  string // checkpoint name of the embedding; "" means New fails
		wantFrom mapSource
	}{
		{"llama2c-tied-embedding", tinyConfig, variant(tinyConfig, tiedSrc, false, NameEmbedding), NameEmbedding, tiedSrc},
		{"llama2c-tied-output-only", tinyConfig, variant(tinyConfig, tiedSrc, false, NameOutput), NameOutput, tiedSrc},
		{"llama2c-tied-both", tinyConfig, variant(tinyConfig, tiedSrc, false, NameEmbedding, NameOutput), NameEmbedding, tiedSrc},
		{"llama2c-untied", untied, variant(untied, untiedSrc, false, NameEmbedding, NameOutput), NameEmbedding, untiedSrc},
		{"hf-tied-embed-tokens", tinyConfig, variant(tinyConfig, tiedSrc, true, hfEmbedding), hfEmbedding, tiedSrc},
		{"hf-tied-lm-head-only", tinyConfig, variant(tinyConfig, tiedSrc, true, hfOutput), hfOutput, tiedSrc},
		{"hf-tied-both", tinyConfig, variant(tinyConfig, tiedSrc, true, hfEmbedding, hfOutput), hfEmbedding, tiedSrc},
		{"hf-untied", untied, variant(untied, untiedSrc, true, hfEmbedding, hfOutput), hfEmbedding, untiedSrc},
		{"hf-untied-lm-head-only", untied, variant(untied, untiedSrc, true, hfOutput), "", mapSource{}},
		{"hf-untied-embed-only", untied, variant(untied, untiedSrc, true, hfEmbedding), "", mapSource{}},
		{"no-embedding", tinyConfig, variant(tinyConfig, tiedSrc, true), "", mapSource{}},
	}
	for _, tt := range tests {
		for _, checked := range []bool{false, true} {
			label := tt.name
			var src WeightSource = tt.src
			if checked {
				label += "/checker"
				src = checkedSource{tt.src}
			}
			t.Run(label, func(t *testing.T) {
				m, err := New(tt.cfg, src)
				if tt.wantEmb == "" {
					if !errors.Is(err, ErrNotFound) {
						t.Fatalf("New() error = %v, want ErrNotFound", err)
					}
					if tt.name == "no-embedding" {
						for _, n := range []string{NameEmbedding, NameOutput, hfEmbedding, hfOutput} {
							if !strings.Contains(err.Error(), n) {
								t.Errorf("error %q does not name %s", err, n)
							}
						}
					}
					return
				}
				if err != nil {
					t.Fatal(err)
				}
				if got := m.CheckpointName(NameEmbedding); got != tt.wantEmb {
					t.Errorf("CheckpointName(%s) = %s, want %s", NameEmbedding, got, tt.wantEmb)
				}
				if back, ok := m.ModelName(tt.wantEmb); !ok || back != NameEmbedding {
					t.Errorf("ModelName(%s) = %q, %v", tt.wantEmb, back, ok)
				}
				want, err := New(tt.cfg, tt.wantFrom)
				if err != nil {
					t.Fatal(err)
				}
				for _, name := range want.Names() {
					if !slices.Equal(m.weights[name], want.weights[name]) {
						t.Errorf("%s differs from the llama2.c checkpoint's", name)
					}
					if _, ok := tt.src.data[m.CheckpointName(name)]; !ok {
						t.Errorf("CheckpointName(%s) = %s, not in the checkpoint", name, m.CheckpointName(name))
					}
				}
				if c := m.Clone(); c.CheckpointName(NameEmbedding) != tt.wantEmb {
					t.Errorf("the clone's CheckpointName(%s) = %s", NameEmbedding, c.CheckpointName(NameEmbedding))
				}
			})
		}
	}
}
