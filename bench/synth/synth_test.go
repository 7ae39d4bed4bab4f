package synth_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"testing"

	"github.com/nwcodec/nwc/bench/synth"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/llama"
	"github.com/nwcodec/nwc/safetensors"
)

// tinyShards makes the tiny shape span several shards.
const tinyShards = 60_000

func generate(t *testing.T, jobs int, seed uint64) string {
	t.Helper()
	dir := t.TempDir()
	s, err := synth.Lookup("tiny")
	if err != nil {
		t.Fatal(err)
	}
	if err := synth.Generate(context.Background(), dir, s, &synth.Options{Seed: seed, ShardBytes: tinyShards, Jobs: jobs}); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCheckpointLayout(t *testing.T) {
	dir := generate(t, 2, 1)
	s, _ := synth.Lookup("tiny")
	src, err := safetensors.OpenPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	sh, ok := src.(*safetensors.Sharded)
	if !ok {
		t.Fatalf("OpenPath(dir) = %T, want a sharded checkpoint", src)
	}
	if n := len(sh.Shards()); n < 2 {
		t.Errorf("%d shards, want several at %d bytes a shard", n, tinyShards)
	}
	want := map[string][]int64{
		"model.embed_tokens.weight": {320, 64}, "lm_head.weight": {320, 64}, "model.norm.weight": {64},
	}
	for l := range 2 {
		p := "model.layers." + string(rune('0'+l)) + "."
		want[p+"self_attn.q_proj.weight"] = []int64{64, 64}
		want[p+"self_attn.k_proj.weight"] = []int64{32, 64} // 2 KV heads of 16
		want[p+"self_attn.v_proj.weight"] = []int64{32, 64}
		want[p+"self_attn.o_proj.weight"] = []int64{64, 64}
		want[p+"mlp.gate_proj.weight"] = []int64{176, 64}
		want[p+"mlp.up_proj.weight"] = []int64{176, 64}
		want[p+"mlp.down_proj.weight"] = []int64{64, 176}
		want[p+"input_layernorm.weight"] = []int64{64}
		want[p+"post_attention_layernorm.weight"] = []int64{64}
	}
	got := map[string][]int64{}
	var total int64
	for _, ti := range src.Tensors() {
		if ti.DType != synth.DType {
			t.Errorf("%s: dtype %s, want BF16", ti.Name, ti.DType)
		}
		got[ti.Name] = ti.Shape
		total += ti.Length
	}
	if len(got) != len(want) {
		t.Errorf("%d tensors, want %d", len(got), len(want))
	}
	for n, sh := range want {
		if !slices.Equal(got[n], sh) {
			t.Errorf("%s: shape %v, want %v", n, got[n], sh)
		}
	}
	if p := s.Params(); p*2 != total {
		t.Errorf("Params() = %d, checkpoint holds %d bytes", p, total)
	}

	var idx struct {
		Metadata struct {
			TotalSize int64 `json:"total_size"`
		} `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	raw, err := os.ReadFile(filepath.Join(dir, synth.IndexFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		t.Fatal(err)
	}
	if idx.Metadata.TotalSize != total {
		t.Errorf("index total_size %d, want %d", idx.Metadata.TotalSize, total)
	}
	for n := range want {
		f, ok := sh.ShardOf(n)
		if !ok || idx.WeightMap[n] != f {
			t.Errorf("weight_map[%s] = %q, tensor is in %q", n, idx.WeightMap[n], f)
		}
	}
	files := slices.Sorted(mapValues(idx.WeightMap))
	if files[0] != "model-00001-of-0000"+string(rune('0'+len(sh.Shards())))+".safetensors" {
		t.Errorf("first shard is called %q", files[0])
	}

	f, err := os.Open(filepath.Join(dir, synth.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	md, err := llama.ConfigFromJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := llama.ConfigFromMetadata(md)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Dim != 64 || cfg.HiddenDim != 176 || cfg.NLayers != 2 || cfg.NHeads != 4 || cfg.NKVHeads != 2 || cfg.RopeTheta != 10000 || cfg.VocabSize != 320 {
		t.Errorf("config.json reads as %+v", cfg)
	}
	if md["architectures"] != "" || md["torch_dtype"] != "bfloat16" || md["model_type"] != "llama" {
		t.Errorf("config.json metadata %v", md)
	}
	var cj map[string]any
	cb, _ := os.ReadFile(filepath.Join(dir, synth.ConfigFile))
	json.Unmarshal(cb, &cj)
	if a, _ := cj["architectures"].([]any); len(a) != 1 || a[0] != "LlamaForCausalLM" {
		t.Errorf("architectures = %v", cj["architectures"])
	}
}

func mapValues(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		seen := map[string]bool{}
		for _, v := range m {
			if !seen[v] {
				seen[v] = true
				if !yield(v) {
					return
				}
			}
		}
	}
}

// TestStatistics checks that the weights look like an LLM's: zero mean,
// heavy tails, a spread of column scales with a few outlier columns, and
// norm gains that are positive.
func TestStatistics(t *testing.T) {
	dir := generate(t, 2, 7)
	src, err := safetensors.OpenPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var colRatios []float64
	var m2, m4, sum float64
	var n int
	for _, ti := range src.Tensors() {
		b, err := src.ReadTensor(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		w, err := dtype.ToFloat32(nil, b, ti.DType)
		if err != nil {
			t.Fatal(err)
		}
		if len(ti.Shape) == 1 {
			for _, v := range w {
				if !(v > 0 && v < 10) {
					t.Fatalf("%s: norm gain %g", ti.Name, v)
				}
			}
			continue
		}
		rows, cols := int(ti.Shape[0]), int(ti.Shape[1])
		col := make([]float64, cols)
		for i := range rows {
			for j := range cols {
				v := float64(w[i*cols+j])
				if math.IsNaN(v) || math.IsInf(v, 0) {
					t.Fatalf("%s: %g", ti.Name, v)
				}
				col[j] += v * v
			}
		}
		// Normalize each matrix by its own RMS: kurtosis within a matrix.
		var s2 float64
		for _, c := range col {
			s2 += c
		}
		rms := math.Sqrt(s2 / float64(len(w)))
		for _, v := range w {
			x := float64(v) / rms
			sum += x
			m2 += x * x
			m4 += x * x * x * x
			n++
		}
		sort.Float64s(col)
		colRatios = append(colRatios, math.Sqrt(col[cols-1]/col[cols/2]))
	}
	mean := sum / float64(n)
	kurt := m4 / float64(n) / (m2 / float64(n) * m2 / float64(n))
	if math.Abs(mean) > 0.01 {
		t.Errorf("mean %g, want about 0", mean)
	}
	if kurt < 5 {
		t.Errorf("kurtosis %.2f, want heavy tails (a Gaussian has 3)", kurt)
	}
	sort.Float64s(colRatios)
	if med := colRatios[len(colRatios)/2]; med < 1.5 {
		t.Errorf("median max/median column RMS %.2f: columns too even", med)
	}
	if top := colRatios[len(colRatios)-1]; top < 5 {
		t.Errorf("largest max/median column RMS %.2f: no outlier column", top)
	}
}

// TestDeterministic: the same seed gives the same bytes on any number of
// goroutines; another seed gives other weights.
func TestDeterministic(t *testing.T) {
	a, b, c := generate(t, 1, 3), generate(t, 3, 3), generate(t, 2, 4)
	s, _ := synth.Lookup("tiny")
	names := []string{synth.IndexFile, synth.ConfigFile}
	for _, sh := range s.Plan(tinyShards) {
		names = append(names, sh.File)
	}
	for _, n := range names {
		x, _ := os.ReadFile(filepath.Join(a, n))
		y, _ := os.ReadFile(filepath.Join(b, n))
		z, _ := os.ReadFile(filepath.Join(c, n))
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Errorf("%s differs between 1 and 3 goroutines", n)
		}
		if filepath.Ext(n) == ".safetensors" && bytes.Equal(x, z) {
			t.Errorf("%s is the same for seeds 3 and 4", n)
		}
	}
}

func TestValid(t *testing.T) {
	dir := generate(t, 2, 5)
	s, _ := synth.Lookup("tiny")
	opts := &synth.Options{Seed: 5, ShardBytes: tinyShards}
	if !synth.Valid(dir, s, opts) {
		t.Fatal("Valid = false right after Generate")
	}
	if synth.Valid(dir, s, &synth.Options{Seed: 6, ShardBytes: tinyShards}) {
		t.Error("Valid for another seed")
	}
	shard := filepath.Join(dir, s.Plan(tinyShards)[0].File)
	if err := os.Truncate(shard, 100); err != nil {
		t.Fatal(err)
	}
	if synth.Valid(dir, s, opts) {
		t.Error("Valid with a truncated shard")
	}
}

func TestCancel(t *testing.T) {
	dir := t.TempDir()
	s, _ := synth.Lookup("tiny")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := synth.Generate(ctx, dir, s, &synth.Options{ShardBytes: tinyShards})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Generate after cancel: %v, want context.Canceled", err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		t.Errorf("left %s behind", e.Name())
	}
}

func TestLookup(t *testing.T) {
	for _, name := range []string{"tinyllama-1.1b", "llama3-8b"} {
		s, err := synth.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(); err != nil {
			t.Error(err)
		}
	}
	s, _ := synth.Lookup("tinyllama-1.1b")
	if p := s.Params(); p != 1_100_048_384 {
		t.Errorf("tinyllama-1.1b has %d weights, want 1100048384", p)
	}
	s, _ = synth.Lookup("llama3-8b")
	if p := s.Params(); p != 8_030_261_248 {
		t.Errorf("llama3-8b has %d weights, want 8030261248", p)
	}
	if _, err := synth.Lookup("gpt-5"); err == nil {
		t.Error("Lookup of an unknown shape succeeded")
	}
}
