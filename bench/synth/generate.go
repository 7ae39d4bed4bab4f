package synth

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"

	"github.com/nwcodec/nwc/internal/atomicfile"
	"github.com/nwcodec/nwc/internal/ordered"
	"github.com/nwcodec/nwc/safetensors"
)

// File names Generate writes beside the shards.
const (
	IndexFile  = "model.safetensors.index.json"
	ConfigFile = "config.json"
	// MarkerFile records the shape and seed of a complete checkpoint; it is
	// written last, so its presence means every other file is complete.
	MarkerFile = "synth.json"
)

// DefaultShardBytes is the shard size limit: Hugging Face writes 2–5 GB
// shards.
const DefaultShardBytes = 2_000_000_000

// generatorVersion changes whenever the same shape and seed would give
// different bytes, so that Valid does not accept a stale checkpoint.
const generatorVersion = 1

// Options configure Generate. The zero value selects the defaults.
type Options struct {
	// Seed selects the weights; the same seed gives the same bytes.
	Seed uint64
	// ShardBytes bounds a shard's tensor bytes (default DefaultShardBytes).
	ShardBytes int64
	// Jobs is the number of goroutines drawing weights (default GOMAXPROCS).
	Jobs int
	// Progress, if set, is called after each block of rows with the weights
	// written so far and the total.
	Progress func(done, total int64)
}

func (o *Options) withDefaults() Options {
	var v Options
	if o != nil {
		v = *o
	}
	if v.ShardBytes <= 0 {
		v.ShardBytes = DefaultShardBytes
	}
	if v.Jobs <= 0 {
		v.Jobs = runtime.GOMAXPROCS(0)
	}
	return v
}

type marker struct {
	Version    int     `json:"generator_version"`
	Shape      Shape   `json:"shape"`
	Seed       uint64  `json:"seed"`
	ShardBytes int64   `json:"shard_bytes"`
	Files      []entry `json:"files"`
}

type entry struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// Valid reports whether dir holds a complete checkpoint Generate wrote for
// this shape and options: the marker matches and every shard has the size
// it was written with. It does not reread the weights.
func Valid(dir string, s Shape, opts *Options) bool {
	o := opts.withDefaults()
	raw, err := os.ReadFile(filepath.Join(dir, MarkerFile))
	if err != nil {
		return false
	}
	var m marker
	if json.Unmarshal(raw, &m) != nil || m.Version != generatorVersion || m.Seed != o.Seed ||
		m.ShardBytes != o.ShardBytes || fmt.Sprint(m.Shape) != fmt.Sprint(s) || len(m.Files) == 0 {
		return false
	}
	for _, f := range m.Files {
		fi, err := os.Stat(filepath.Join(dir, f.Name))
		if err != nil || fi.Size() != f.Size {
			return false
		}
	}
	return true
}

// Generate writes the checkpoint of shape s into dir (created if needed):
// the shards, the index and config.json, then the marker Valid looks for.
// Weights are drawn in blocks of rows on opts.Jobs goroutines and written
// in order, so memory stays a few blocks whatever the model's size.
// Cancelling ctx stops it; each file appears under its name only complete.
func Generate(ctx context.Context, dir string, s Shape, opts *Options) error {
	if err := s.Validate(); err != nil {
		return err
	}
	o := opts.withDefaults()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	os.Remove(filepath.Join(dir, MarkerFile))
	shards := s.Plan(o.ShardBytes)
	g := &gen{seed: o.Seed, jobs: o.Jobs, progress: o.Progress, total: s.Params()}
	m := marker{Version: generatorVersion, Shape: s, Seed: o.Seed, ShardBytes: o.ShardBytes}
	weightMap := map[string]string{}
	var totalSize int64
	for _, sh := range shards {
		size, err := g.writeShard(ctx, filepath.Join(dir, sh.File), sh.Tensors)
		if err != nil {
			return err
		}
		m.Files = append(m.Files, entry{sh.File, size})
		for _, t := range sh.Tensors {
			weightMap[t.Name] = sh.File
			totalSize += t.Bytes()
		}
	}
	idx, err := indexJSON(totalSize, weightMap)
	if err != nil {
		return err
	}
	cfg, err := ConfigJSON(s)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{IndexFile, idx}, {ConfigFile, cfg}} {
		if err := writeAtomic(filepath.Join(dir, f.name), f.data); err != nil {
			return err
		}
		m.Files = append(m.Files, entry{f.name, int64(len(f.data))})
	}
	mk, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(dir, MarkerFile), append(mk, '\n'))
}

func writeAtomic(path string, data []byte) error {
	f, err := atomicfile.Create(path)
	if err != nil {
		return err
	}
	defer f.Abort()
	if _, err := f.Write(data); err != nil {
		return err
	}
	return f.Commit()
}

// indexJSON renders the index as transformers writes it: two-space
// indentation, weight_map sorted by tensor name.
func indexJSON(totalSize int64, weightMap map[string]string) ([]byte, error) {
	names := make([]string, 0, len(weightMap))
	for n := range weightMap {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	fmt.Fprintf(&b, "{\n  \"metadata\": {\n    \"total_size\": %d\n  },\n  \"weight_map\": {\n", totalSize)
	for i, n := range names {
		k, _ := json.Marshal(n)
		v, _ := json.Marshal(weightMap[n])
		sep := ","
		if i == len(names)-1 {
			sep = ""
		}
		fmt.Fprintf(&b, "    %s: %s%s\n", k, v, sep)
	}
	b.WriteString("  }\n}\n")
	if !json.Valid(b.Bytes()) {
		return nil, fmt.Errorf("synth: index JSON is malformed")
	}
	return b.Bytes(), nil
}

// ConfigJSON renders the config.json transformers writes for a
// LlamaForCausalLM of shape s saved in bfloat16.
func ConfigJSON(s Shape) ([]byte, error) {
	type config struct {
		Architectures         []string  `json:"architectures"`
		AttentionBias         bool      `json:"attention_bias"`
		AttentionDropout      float64   `json:"attention_dropout"`
		BOSTokenID            int       `json:"bos_token_id"`
		EOSTokenID            int       `json:"eos_token_id"`
		HeadDim               int       `json:"head_dim"`
		HiddenAct             string    `json:"hidden_act"`
		HiddenSize            int       `json:"hidden_size"`
		InitializerRange      float64   `json:"initializer_range"`
		IntermediateSize      int       `json:"intermediate_size"`
		MaxPositionEmbeddings int       `json:"max_position_embeddings"`
		MLPBias               bool      `json:"mlp_bias"`
		ModelType             string    `json:"model_type"`
		NumAttentionHeads     int       `json:"num_attention_heads"`
		NumHiddenLayers       int       `json:"num_hidden_layers"`
		NumKeyValueHeads      int       `json:"num_key_value_heads"`
		PretrainingTP         int       `json:"pretraining_tp"`
		RMSNormEps            float64   `json:"rms_norm_eps"`
		RopeScaling           *struct{} `json:"rope_scaling"`
		RopeTheta             float64   `json:"rope_theta"`
		TieWordEmbeddings     bool      `json:"tie_word_embeddings"`
		TorchDType            string    `json:"torch_dtype"`
		TransformersVersion   string    `json:"transformers_version"`
		UseCache              bool      `json:"use_cache"`
		VocabSize             int       `json:"vocab_size"`
	}
	b, err := json.MarshalIndent(config{
		Architectures: []string{"LlamaForCausalLM"}, BOSTokenID: s.BOS, EOSTokenID: s.EOS,
		HeadDim: s.Dim / s.Heads, HiddenAct: "silu", HiddenSize: s.Dim, InitializerRange: 0.02,
		IntermediateSize: s.Hidden, MaxPositionEmbeddings: s.MaxPos, ModelType: "llama",
		NumAttentionHeads: s.Heads, NumHiddenLayers: s.Layers, NumKeyValueHeads: s.KVHeads,
		PretrainingTP: 1, RMSNormEps: 1e-5, RopeTheta: s.RopeTheta, TorchDType: "bfloat16",
		TransformersVersion: "4.44.2", UseCache: true, VocabSize: s.Vocab,
	}, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

type gen struct {
	seed     uint64
	jobs     int
	progress func(done, total int64)
	total    int64

	mu   sync.Mutex
	done int64
}

// writeShard writes one safetensors file and returns its size.
func (g *gen) writeShard(ctx context.Context, path string, ts []Tensor) (int64, error) {
	h := &safetensors.Header{Metadata: map[string]string{"format": "pt"}}
	for _, t := range ts {
		h.Tensors = append(h.Tensors, safetensors.TensorInfo{Name: t.Name, DType: DType, Shape: t.Shape})
	}
	f, err := atomicfile.Create(path)
	if err != nil {
		return 0, err
	}
	defer f.Abort()
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := safetensors.NewWriter(bw, h)
	if err != nil {
		return 0, err
	}
	for _, t := range ts {
		if err := w.WriteTensorFunc(t.Name, func(write func([]byte) error) error {
			return g.writeTensor(ctx, t, write)
		}); err != nil {
			return 0, fmt.Errorf("synth: %s: %w", t.Name, err)
		}
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	if err := bw.Flush(); err != nil {
		return 0, err
	}
	if err := f.Commit(); err != nil {
		return 0, err
	}
	last := w.Tensors()[len(ts)-1]
	return last.Offset + last.Length, nil
}

// Statistics of the weights: a Student-t with 4 degrees of freedom (finite
// variance, heavy tails like trained weights), scaled per row and per column
// by log-normal factors, with a few outlier columns as in real LLMs.
const (
	colSigma      = 0.35  // log-normal sigma of column scales
	rowSigma      = 0.2   // log-normal sigma of row scales
	outlierRate   = 0.004 // fraction of outlier columns
	outlierMin    = 6.0   // outlier column scale, uniform in [min, min+span)
	outlierSpan   = 14.0
	normSigma     = 0.25
	rowBlockBytes = 4 << 20
)

// writeTensor draws t's weights in blocks of rows on g.jobs goroutines and
// passes the BF16 bytes of each block to emit, in order.
func (g *gen) writeTensor(ctx context.Context, t Tensor, emit func([]byte) error) error {
	key := tensorKey(g.seed, t.Name)
	rows, cols := t.Shape[0], int64(1)
	if len(t.Shape) == 2 {
		cols = t.Shape[1]
	}
	if t.kind == kindNorm {
		// One row of per-channel gains around a layer-typical level.
		buf := make([]byte, 2*rows)
		level := 0.4
		if t.Name == "model.norm.weight" {
			level = 1.8
		}
		for i := range rows {
			v := level * math.Exp(normSigma*normal(key, uint64(i)))
			putBF16(buf[2*i:], float32(v))
		}
		if err := emit(buf); err != nil {
			return err
		}
		g.advance(rows)
		return nil
	}
	colScale := make([]float32, cols)
	sigma := 0.9 / math.Sqrt(float64(cols)) / math.Sqrt2 // the t4 has variance 2
	for j := range cols {
		c := sigma * math.Exp(colSigma*normal(key^0x636f6c73, uint64(j)))
		if u := uniform(key^0x6f75746c, uint64(j)); u < outlierRate {
			c *= outlierMin + outlierSpan*u/outlierRate
		}
		colScale[j] = float32(c)
	}
	per := max(1, rowBlockBytes/(2*cols))
	nblocks := (rows + per - 1) / per
	fill := func(b int64, buf []byte) error {
		r0, r1 := b*per, min(rows, (b+1)*per)
		for i := r0; i < r1; i++ {
			rs := float32(math.Exp(rowSigma * normal(key^0x726f7773, uint64(i))))
			fillRow(buf[2*(i-r0)*cols:2*(i-r0+1)*cols], colScale, rs, mix(key+uint64(i)*0x9e3779b97f4a7c15))
		}
		return nil
	}
	return ordered.Run(ctx, nblocks, g.jobs, func(b int64) int { return int(2 * cols * (min(rows, (b+1)*per) - b*per)) }, fill,
		func(b int64, buf []byte) error {
			if err := emit(buf); err != nil {
				return err
			}
			g.advance(int64(len(buf) / 2))
			return nil
		})
}

func (g *gen) advance(n int64) {
	if g.progress == nil {
		return
	}
	g.mu.Lock()
	g.done += n
	done := g.done
	g.mu.Unlock()
	g.progress(done, g.total)
}

// fillRow writes one row of BF16 weights: Student-t(4) draws by Bailey's
// polar method, t = u·sqrt(4(w^(-1/2) − 1)/w), times the row and column scales.
func fillRow(dst []byte, colScale []float32, rowScale float32, state uint64) {
	for j, c := range colScale {
		var u, w float64
		for {
			state += 0x9e3779b97f4a7c15
			hi, lo := bits.Mul64(state, state^0xe7037ed1a0b428db)
			r := hi ^ lo
			u = float64(int32(r)) * (1.0 / (1 << 31))
			v := float64(int32(r>>32)) * (1.0 / (1 << 31))
			w = u*u + v*v
			if w < 1 && w > 0 {
				break
			}
		}
		t := u * math.Sqrt(4*(1/math.Sqrt(w)-1)/w)
		putBF16(dst[2*j:], float32(t)*c*rowScale)
	}
}

func putBF16(dst []byte, f float32) {
	b := math.Float32bits(f)
	b += 0x7fff + (b>>16)&1 // round to nearest even; no NaN can arise here
	dst[0], dst[1] = byte(b>>16), byte(b>>24)
}

func tensorKey(seed uint64, name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return mix(seed ^ mix(h.Sum64()))
}

// mix is SplitMix64's finalizer: a bijective 64-bit hash.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// uniform returns a uniform value in [0, 1) determined by key and i.
func uniform(key, i uint64) float64 {
	return float64(mix(key^mix(i+0x9e3779b97f4a7c15))>>11) * (1.0 / (1 << 53))
}

// normal returns a standard normal value determined by key and i
// (Box–Muller).
func normal(key, i uint64) float64 {
	u1 := uniform(key, 2*i) + 1.0/(1<<54)
	u2 := uniform(key, 2*i+1)
	return math.Sqrt(-2*math.Log(u1)) * math.Cos(2*math.Pi*u2)
}
