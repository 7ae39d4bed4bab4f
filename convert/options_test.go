package convert_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/safetensors"
)

// TestOptionErrors checks that options conversion cannot use are
// reported as codec.ErrOptions, whether conversion or a codec rejects
// them, and that nothing is written.
func TestOptionErrors(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.safetensors")
	h := &safetensors.Header{Tensors: []safetensors.TensorInfo{{Name: "w", DType: safetensors.F32, Shape: []int64{32, 32}}}}
	if err := safetensors.WriteFile(in, h, func(string) ([]byte, error) { return make([]byte, 4*32*32), nil }); err != nil {
		t.Fatal(err)
	}
	src, err := safetensors.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for _, tc := range []struct {
		name string
		o    convert.Options
	}{
		{"bits above 16", convert.Options{Codec: "ecsq", Bits: 40}},
		{"negative bits", convert.Options{Codec: "nwc", Bits: -2}},
		{"ecsq step out of range", convert.Options{Codec: "ecsq", MinElements: 1, Encode: codec.EncodeOptions{Step: 1e9}}},
		{"rtn bits", convert.Options{Codec: "rtn", MinElements: 1, Encode: codec.EncodeOptions{Bits: 12}}},
		{"nwc step", convert.Options{Codec: "nwc", MinElements: 1, Encode: codec.EncodeOptions{Step: -1}}},
	} {
		out := filepath.Join(dir, "out.nwc")
		if _, err := convert.ToNWC(context.Background(), src, out, &tc.o); !errors.Is(err, codec.ErrOptions) {
			t.Errorf("%s: %v, want codec.ErrOptions", tc.name, err)
		}
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s: output exists after the failure (%v)", tc.name, err)
		}
	}
	if err := convert.ToSafetensors(nil, filepath.Join(dir, "back.safetensors"), "f8"); !errors.Is(err, codec.ErrOptions) {
		t.Errorf("output dtype f8: %v, want codec.ErrOptions", err)
	}
}
