package gguf_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	ggufparser "github.com/gpustack/gguf-parser-go"

	"github.com/nwcodec/nwc/gguf"
)

// TestHeaderValueTypes writes one pair of every value type and tensors of
// every element type with a 64-byte alignment, and reads them back with
// gguf-parser-go.
func TestHeaderValueTypes(t *testing.T) {
	kvs := []gguf.KV{
		{"general.architecture", "llama"},
		{"general.alignment", uint32(64)},
		{"u8", uint8(200)}, {"i8", int8(-100)}, {"u16", uint16(60000)}, {"i16", int16(-30000)},
		{"u32", uint32(4000000000)}, {"i32", int32(-2000000000)}, {"u64", uint64(1) << 60}, {"i64", int64(-1) << 60},
		{"f32", float32(0.25)}, {"f64", 1e-300}, {"bool", true}, {"string", "héllo"},
		{"a.u8", []uint8{1, 2}}, {"a.i32", []int32{-1, 2}}, {"a.f32", []float32{0.5}}, {"a.string", []string{"a", "", "c"}},
		{"a.bool", []bool{true, false}}, {"a.u64", []uint64{7}}, {"a.f64", []float64{}},
	}
	tensors := []gguf.TensorInfo{
		{Name: "a", Dims: []uint64{3, 2}, Type: gguf.F32},
		{Name: "b", Dims: []uint64{5}, Type: gguf.F16},
		{Name: "c", Dims: []uint64{1, 1, 3}, Type: gguf.BF16},
	}
	hdr, lay, err := gguf.Header(kvs, tensors)
	if err != nil {
		t.Fatal(err)
	}
	if lay.Alignment != 64 || lay.DataOffset%64 != 0 || int64(len(hdr)) != lay.DataOffset {
		t.Fatalf("layout %+v, header %d bytes", lay, len(hdr))
	}
	if want := []int64{0, 64, 128}; fmt.Sprint(lay.Offsets) != fmt.Sprint(want) || lay.Size != lay.DataOffset+192 {
		t.Fatalf("offsets %v size %d", lay.Offsets, lay.Size)
	}
	path := filepath.Join(t.TempDir(), "h.gguf")
	if err := os.WriteFile(path, append(hdr, make([]byte, lay.Size-lay.DataOffset)...), 0o644); err != nil {
		t.Fatal(err)
	}
	p := parseGGUF(t, path)
	if p.f.Header.Version != 3 || p.f.Header.TensorCount != 3 || int(p.f.Header.MetadataKVCount) != len(kvs) {
		t.Fatalf("header %+v", p.f.Header)
	}
	if p.f.TensorDataStartOffset != lay.DataOffset {
		t.Fatalf("data at %d, want %d", p.f.TensorDataStartOffset, lay.DataOffset)
	}
	md := p.metadata()
	for _, kv := range kvs {
		g, ok := md[kv.Key]
		if !ok {
			t.Errorf("%s missing", kv.Key)
			continue
		}
		want := fmt.Sprint(kv.Value)
		if s, ok := kv.Value.(string); ok {
			want = s
		}
		if fmt.Sprint(g) != want {
			t.Errorf("%s = %v, want %v", kv.Key, g, want)
		}
	}
	types := []ggufparser.GGMLType{ggufparser.GGMLTypeF32, ggufparser.GGMLTypeF16, ggufparser.GGMLTypeBF16}
	for i, ti := range p.f.TensorInfos {
		if ti.Name != tensors[i].Name || fmt.Sprint(ti.Dimensions) != fmt.Sprint(tensors[i].Dims) || ti.Type != types[i] || int64(ti.Offset) != lay.Offsets[i] {
			t.Errorf("tensor %d: %+v", i, ti)
		}
	}
}

// TestHeaderErrors: descriptors that cannot make a valid file are refused.
func TestHeaderErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		kvs     []gguf.KV
		tensors []gguf.TensorInfo
	}{
		{"duplicate key", []gguf.KV{{"a", "x"}, {"a", "y"}}, nil},
		{"alignment not a power of two", []gguf.KV{{"general.alignment", uint32(48)}}, nil},
		{"alignment of another type", []gguf.KV{{"general.alignment", 32}}, nil},
		{"value type", []gguf.KV{{"a", struct{}{}}}, nil},
		{"array element type", []gguf.KV{{"a", [][]int32{{1}}}}, nil},
		{"duplicate tensor", nil, []gguf.TensorInfo{{Name: "t", Dims: []uint64{1}, Type: gguf.F32}, {Name: "t", Dims: []uint64{1}, Type: gguf.F32}}},
		{"tensor type", nil, []gguf.TensorInfo{{Name: "t", Dims: []uint64{1}, Type: 2}}},
		{"overflow", nil, []gguf.TensorInfo{{Name: "t", Dims: []uint64{1 << 40, 1 << 40}, Type: gguf.F32}}},
	} {
		if _, _, err := gguf.Header(tc.kvs, tc.tensors); !errors.Is(err, gguf.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
		}
	}
}
