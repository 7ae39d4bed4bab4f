package gguf_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ggufparser "github.com/gpustack/gguf-parser-go"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/gguf"
	"github.com/nwcodec/nwc/internal/shareddata"
	"github.com/nwcodec/nwc/llama"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/safetensors"
	"github.com/nwcodec/nwc/tokenizer"
)

// parsed is a GGUF file read by gguf-parser-go, a parser written apart
// from this package, with its bytes to find the tensor data in.
type parsed struct {
	f   *ggufparser.GGUFFile
	raw []byte
}

func parseGGUF(t *testing.T, path string) parsed {
	t.Helper()
	f, err := ggufparser.ParseGGUFFile(path)
	if err != nil {
		t.Fatalf("gguf-parser-go: %s: %v", path, err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parsed{f, raw}
}

// metadata returns every key with its value; arrays become []any.
func (p parsed) metadata() map[string]any {
	m := map[string]any{}
	for _, kv := range p.f.Header.MetadataKV {
		if kv.ValueType == ggufparser.GGUFMetadataValueTypeArray {
			m[kv.Key] = kv.ValueArray().Array
			continue
		}
		m[kv.Key] = kv.Value
	}
	return m
}

type tensorData struct {
	dims []uint64
	typ  ggufparser.GGMLType
	data []byte
}

func (p parsed) tensors(t *testing.T) map[string]tensorData {
	t.Helper()
	out := map[string]tensorData{}
	for _, ti := range p.f.TensorInfos {
		start := uint64(p.f.TensorDataStartOffset) + ti.Offset
		end := start + ti.Bytes()
		if end > uint64(len(p.raw)) {
			t.Fatalf("tensor %s ends at %d, past the file's %d bytes", ti.Name, end, len(p.raw))
		}
		out[ti.Name] = tensorData{dims: ti.Dimensions, typ: ti.Type, data: p.raw[start:end]}
	}
	return out
}

// toNWC converts a safetensors file to .nwc losslessly.
func toNWC(t *testing.T, in, out string) *reader.ReadCloser {
	t.Helper()
	src, err := safetensors.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	if _, err := convert.ToNWC(context.Background(), src, out, &convert.Options{Codec: codec.Lossless}); err != nil {
		t.Fatal(err)
	}
	r, err := reader.Open(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func export(t *testing.T, r *reader.Reader, out string, o *gguf.ExportOptions) parsed {
	t.Helper()
	if err := gguf.Export(context.Background(), r, out, o); err != nil {
		t.Fatal(err)
	}
	return parseGGUF(t, out)
}

// TestExportStories260K exports stories260K (converted to .nwc losslessly)
// as an F32 GGUF with its tokenizer, checks every metadata key, and
// compares every tensor bit for bit with the GGUF llama.cpp's tools made of
// the same model (a version 1 file).
func TestExportStories260K(t *testing.T) {
	refPath := shareddata.Path(t, "stories260K", "tinyllamas-stories-260k-f32.gguf")
	tok, err := tokenizer.Load(shareddata.Path(t, "stories260K", "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	r := toNWC(t, shareddata.Path(t, "stories260K", "stories260K.safetensors"), filepath.Join(dir, "m.nwc"))
	out := filepath.Join(dir, "m.gguf")
	got := export(t, r.Reader, out, &gguf.ExportOptions{DType: "f32", Tokenizer: tok, Name: "stories260K"})
	ref := parseGGUF(t, refPath)

	if got.f.Header.Version != 3 {
		t.Errorf("version %d, want 3", got.f.Header.Version)
	}
	md, refMD := got.metadata(), ref.metadata()
	want := map[string]any{
		"general.architecture":                   "llama",
		"general.alignment":                      uint32(32),
		"general.file_type":                      uint32(0),
		"general.name":                           "stories260K",
		"llama.context_length":                   uint32(512),
		"llama.embedding_length":                 uint32(64),
		"llama.block_count":                      uint32(5),
		"llama.feed_forward_length":              uint32(172),
		"llama.attention.head_count":             uint32(8),
		"llama.attention.head_count_kv":          uint32(4),
		"llama.attention.layer_norm_rms_epsilon": float32(1e-5),
		"llama.rope.freq_base":                   float32(10000),
		"llama.rope.dimension_count":             uint32(8),
		"llama.vocab_size":                       uint32(512),
		"tokenizer.ggml.model":                   "llama",
		"tokenizer.ggml.unknown_token_id":        uint32(0),
		"tokenizer.ggml.bos_token_id":            uint32(1),
		"tokenizer.ggml.eos_token_id":            uint32(2),
		// The vocabulary, scores and token types are the reference's.
		"tokenizer.ggml.tokens":     refMD["tokenizer.ggml.tokens"],
		"tokenizer.ggml.scores":     refMD["tokenizer.ggml.scores"],
		"tokenizer.ggml.token_type": refMD["tokenizer.ggml.token_type"],
	}
	for k, v := range want {
		if g, ok := md[k]; !ok {
			t.Errorf("metadata %s missing", k)
		} else if fmt.Sprint(g) != fmt.Sprint(v) || fmt.Sprintf("%T", g) != fmt.Sprintf("%T", v) {
			t.Errorf("metadata %s = %v (%T), want %v (%T)", k, short(g), g, short(v), v)
		}
		// Every key the reference has too says the same.
		if rv, ok := refMD[k]; ok && k != "general.name" && fmt.Sprint(rv) != fmt.Sprint(md[k]) {
			t.Errorf("metadata %s = %v, the reference has %v", k, short(md[k]), short(rv))
		}
	}
	for k := range md {
		if _, ok := want[k]; !ok {
			t.Errorf("unexpected metadata key %s", k)
		}
	}

	gt, rt := got.tensors(t), ref.tensors(t)
	if len(gt) != len(rt)-1 {
		t.Errorf("%d tensors, the reference has %d (with output.weight, which this tied model lacks)", len(gt), len(rt))
	}
	for name, rd := range rt {
		ours := name
		if name == "output.weight" {
			// stories260K ties the classifier to the embedding: the
			// reference stores a copy, the export none (llama.cpp then
			// uses token_embd.weight).
			ours = "token_embd.weight"
			if _, ok := gt[name]; ok {
				t.Errorf("a tied model's export has output.weight")
			}
		}
		gd, ok := gt[ours]
		if !ok {
			t.Errorf("tensor %s missing", ours)
			continue
		}
		if !slices.Equal(gd.dims, rd.dims) || gd.typ != ggufparser.GGMLTypeF32 || rd.typ != ggufparser.GGMLTypeF32 {
			t.Errorf("tensor %s: dims %v type %v, reference %v %v", name, gd.dims, gd.typ, rd.dims, rd.typ)
		}
		if !bytes.Equal(gd.data, rd.data) {
			t.Errorf("tensor %s: data differs from the reference", name)
		}
	}
	for _, ti := range got.f.TensorInfos {
		if ti.Offset%32 != 0 {
			t.Errorf("tensor %s at offset %d, not aligned", ti.Name, ti.Offset)
		}
	}
	if got.f.TensorDataStartOffset%32 != 0 {
		t.Errorf("data starts at %d, not aligned", got.f.TensorDataStartOffset)
	}
}

func short(v any) string {
	s := fmt.Sprint(v)
	if len(s) > 80 {
		s = s[:80] + "..."
	}
	return s
}

// hfNames maps llama2.c's per-layer names to Hugging Face's.
var hfNames = map[string]string{
	"attention.wq": "self_attn.q_proj", "attention.wk": "self_attn.k_proj",
	"attention.wv": "self_attn.v_proj", "attention.wo": "self_attn.o_proj",
	"feed_forward.w1": "mlp.gate_proj", "feed_forward.w2": "mlp.down_proj", "feed_forward.w3": "mlp.up_proj",
	"attention_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
}

// toRotateHalf reorders a Meta (interleaved) query or key projection as
// Hugging Face's conversion script does: viewed as [heads][headDim/2][2]
// rows, the two inner axes swap.
func toRotateHalf(data []byte, rows, cols, headDim, esize int) []byte {
	out := make([]byte, len(data))
	row := cols * esize
	for h := range rows / headDim {
		for i := range headDim / 2 {
			for k := range 2 {
				src := h*headDim + i*2 + k
				dst := h*headDim + k*(headDim/2) + i
				copy(out[dst*row:(dst+1)*row], data[src*row:(src+1)*row])
			}
		}
	}
	return out
}

// TestExportHFNames builds the Hugging Face form of stories260K (names,
// rotate-half query and key rows, an untied lm_head, config.json instead
// of metadata) and checks that it exports to the same GGUF tensors as the
// llama2.c form.
func TestExportHFNames(t *testing.T) {
	in := shareddata.Path(t, "stories260K", "stories260K.safetensors")
	dir := t.TempDir()
	src, err := safetensors.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	h := &safetensors.Header{}
	data := map[string][]byte{}
	for _, ti := range src.Tensors() {
		b, err := src.ReadTensor(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		name := map[string]string{"tok_embeddings.weight": "model.embed_tokens.weight", "norm.weight": "model.norm.weight"}[ti.Name]
		if name == "" {
			var l int
			var suffix string
			if _, err := fmt.Sscanf(strings.Replace(ti.Name, ".", " ", 2), "layers %d %s", &l, &suffix); err != nil {
				t.Fatalf("%s: %v", ti.Name, err)
			}
			base := strings.TrimSuffix(suffix, ".weight")
			name = fmt.Sprintf("model.layers.%d.%s.weight", l, hfNames[base])
			if base == "attention.wq" || base == "attention.wk" {
				b = toRotateHalf(b, int(ti.Shape[0]), int(ti.Shape[1]), 8, 4)
			}
		}
		h.Tensors = append(h.Tensors, safetensors.TensorInfo{Name: name, DType: ti.DType, Shape: ti.Shape})
		data[name] = b
		if name == "model.embed_tokens.weight" {
			h.Tensors = append(h.Tensors, safetensors.TensorInfo{Name: "lm_head.weight", DType: ti.DType, Shape: ti.Shape})
			data["lm_head.weight"] = b
		}
	}
	hfPath := filepath.Join(dir, "hf.safetensors")
	if err := safetensors.WriteFile(hfPath, h, func(n string) ([]byte, error) { return data[n], nil }); err != nil {
		t.Fatal(err)
	}
	cfg, err := llama.ConfigFromJSON(strings.NewReader(`{"model_type": "llama", "hidden_size": 64, "intermediate_size": 172,
		"num_hidden_layers": 5, "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 512,
		"max_position_embeddings": 512, "rms_norm_eps": 1e-5, "rope_theta": 10000, "hidden_act": "silu"}`))
	if err != nil {
		t.Fatal(err)
	}
	hf := toNWC(t, hfPath, filepath.Join(dir, "hf.nwc"))
	if _, err := hf.Tensor("model.layers.0.self_attn.q_proj.weight"); err != nil {
		t.Fatal(err)
	}
	got := export(t, hf.Reader, filepath.Join(dir, "hf.gguf"), &gguf.ExportOptions{DType: "f32", Config: cfg}).tensors(t)
	l2 := toNWC(t, in, filepath.Join(dir, "l2.nwc"))
	want := export(t, l2.Reader, filepath.Join(dir, "l2.gguf"), &gguf.ExportOptions{DType: "f32"}).tensors(t)
	if len(got) != len(want)+1 {
		t.Errorf("%d tensors from HF names, %d from llama2.c names (+ output.weight)", len(got), len(want))
	}
	want["output.weight"] = want["token_embd.weight"]
	for name, w := range want {
		g := got[name]
		if !slices.Equal(g.dims, w.dims) || !bytes.Equal(g.data, w.data) {
			t.Errorf("%s: HF export differs from the llama2.c export (dims %v, %v)", name, g.dims, w.dims)
		}
	}
	// Without a configuration the HF file (no config in its metadata)
	// cannot be exported.
	err = gguf.Export(context.Background(), hf.Reader, filepath.Join(dir, "x.gguf"), nil)
	if !errors.Is(err, llama.ErrConfig) {
		t.Errorf("export without config: %v, want llama.ErrConfig", err)
	}
}

// TestExportDTypes exports to F16 and BF16 with a 64-byte alignment: the
// matrices are converted as package dtype does, the norms stay F32.
func TestExportDTypes(t *testing.T) {
	dir := t.TempDir()
	r := toNWC(t, shareddata.Path(t, "stories260K", "stories260K.safetensors"), filepath.Join(dir, "m.nwc"))
	for _, tc := range []struct {
		dt       string
		fdt      format.DType
		typ      ggufparser.GGMLType
		fileType uint32
	}{
		{"f16", format.F16, ggufparser.GGMLTypeF16, 1},
		{"bf16", format.BF16, ggufparser.GGMLTypeBF16, 32},
	} {
		t.Run(tc.dt, func(t *testing.T) {
			p := export(t, r.Reader, filepath.Join(dir, tc.dt+".gguf"), &gguf.ExportOptions{DType: tc.dt, Alignment: 64, Jobs: 3})
			md := p.metadata()
			if md["general.alignment"] != uint32(64) || md["general.file_type"] != tc.fileType {
				t.Errorf("alignment %v, file type %v", md["general.alignment"], md["general.file_type"])
			}
			if p.f.TensorDataStartOffset%64 != 0 {
				t.Errorf("data at %d", p.f.TensorDataStartOffset)
			}
			got := p.tensors(t)
			for _, tt := range r.Tensors() {
				name, _ := gguf.LlamaTensorName(tt.Name())
				g := got[name]
				f32, err := tt.Float32()
				if err != nil {
					t.Fatal(err)
				}
				wantType, want := ggufparser.GGMLTypeF32, make([]byte, 0, 4*len(f32))
				for _, v := range f32 {
					want = binary.LittleEndian.AppendUint32(want, math.Float32bits(v))
				}
				if len(tt.Shape()) == 2 {
					wantType = tc.typ
					if want, err = dtype.FromFloat32(nil, f32, tc.fdt); err != nil {
						t.Fatal(err)
					}
				}
				if g.typ != wantType || !bytes.Equal(g.data, want) {
					t.Errorf("%s: type %v, want %v, or data differs", name, g.typ, wantType)
				}
			}
			for _, ti := range p.f.TensorInfos {
				if ti.Offset%64 != 0 {
					t.Errorf("%s at %d", ti.Name, ti.Offset)
				}
			}
		})
	}
}

// TestExportErrors: what cannot become a Llama GGUF is refused with a
// typed error, and no output file is left.
func TestExportErrors(t *testing.T) {
	dir := t.TempDir()
	r := toNWC(t, shareddata.Path(t, "stories260K", "stories260K.safetensors"), filepath.Join(dir, "m.nwc"))
	tok, err := tokenizer.Load(shareddata.Path(t, "stories260K", "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		o    gguf.ExportOptions
		want error
	}{
		{"dtype", gguf.ExportOptions{DType: "q4"}, gguf.ErrInvalid},
		{"alignment", gguf.ExportOptions{Alignment: 48}, gguf.ErrInvalid},
		{"kv heads", gguf.ExportOptions{Config: map[string]string{"n_heads": "4", "n_kv_heads": "4"}}, gguf.ErrInvalid},
		{"embedding", gguf.ExportOptions{Config: map[string]string{"vocab_size": "500"}}, gguf.ErrInvalid},
		{"vocab", gguf.ExportOptions{Config: map[string]string{"vocab_size": "1000"}, Tokenizer: tok}, gguf.ErrInvalid},
		{"config", gguf.ExportOptions{Config: map[string]string{"dim": "x"}}, llama.ErrConfig},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.name+".gguf")
			err := gguf.Export(context.Background(), r.Reader, out, &tc.o)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if _, err := os.Stat(out); err == nil {
				t.Fatal("output left behind")
			}
		})
	}
	// A tensor of no Llama model.
	in := filepath.Join(dir, "odd.safetensors")
	h := &safetensors.Header{Tensors: []safetensors.TensorInfo{{Name: "encoder.conv.weight", DType: safetensors.F32, Shape: []int64{2, 2}}}}
	if err := safetensors.WriteFile(in, h, func(string) ([]byte, error) { return make([]byte, 16), nil }); err != nil {
		t.Fatal(err)
	}
	odd := toNWC(t, in, filepath.Join(dir, "odd.nwc"))
	err = gguf.Export(context.Background(), odd.Reader, filepath.Join(dir, "odd.gguf"), &gguf.ExportOptions{Config: llama.Config{
		Dim: 2, HiddenDim: 2, NLayers: 1, NHeads: 1, NKVHeads: 1, VocabSize: 2, SeqLen: 2, NormEps: 1e-5, RopeTheta: 1e4}.Metadata()})
	if !errors.Is(err, format.ErrUnsupported) {
		t.Fatalf("odd tensor: %v, want format.ErrUnsupported", err)
	}
}
