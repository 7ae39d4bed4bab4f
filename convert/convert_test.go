package convert_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/internal/shareddata"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/safetensors"
)

var realFiles = [][]string{
	{"stories260K", "stories260K.safetensors"},
	{"vision", "ppocr_det.safetensors"},
}

// roundTrip converts in with codec id and decodes it back, returning the
// decoded file's bytes and the .nwc size.
func roundTrip(t *testing.T, in, id string) ([]byte, int64) {
	t.Helper()
	r, size := toVerifiedNWC(t, in, &convert.Options{Codec: id, SourceName: in})
	back := filepath.Join(t.TempDir(), "back.safetensors")
	if err := convert.ToSafetensors(r.Reader, back, convert.DTypeOrig); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(back)
	if err != nil {
		t.Fatal(err)
	}
	return b, size
}

// toVerifiedNWC converts the safetensors checkpoint in with o, verifies
// the result deeply and returns it open (closed when the test ends) with
// its size.
func toVerifiedNWC(t *testing.T, in string, o *convert.Options) (*reader.ReadCloser, int64) {
	t.Helper()
	src, err := safetensors.OpenPath(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out := filepath.Join(t.TempDir(), "m.nwc")
	st, err := convert.ToNWC(context.Background(), src, out, o)
	if err != nil {
		t.Fatal(err)
	}
	r, err := reader.Open(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	if err := r.Verify(context.Background(), &reader.VerifyOptions{Deep: true}); err != nil {
		t.Fatal(err)
	}
	return r, st.OutBytes
}

// TestRealRoundTrip converts the shared checkpoints with raw and lossless
// and checks that decoding gives back the original files byte for byte,
// metadata and header layout included.
func TestRealRoundTrip(t *testing.T) {
	for _, f := range realFiles {
		in := shareddata.Path(t, f...)
		orig, err := os.ReadFile(in)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{codec.Raw, codec.Lossless} {
			got, size := roundTrip(t, in, id)
			if !bytes.Equal(got, orig) {
				t.Errorf("%s via %s: decoded file differs from the original", f[1], id)
			}
			t.Logf("%s %s: %d of %d bytes (%.4f)", f[1], id, size, len(orig), float64(size)/float64(len(orig)))
		}
	}
}

// TestLosslessBF16 converts BF16 copies of the shared checkpoints: the
// lossless codec must store them in at most 70 % of their size, and give
// them back exactly.
func TestLosslessBF16(t *testing.T) {
	for _, f := range realFiles {
		in := shareddata.Path(t, f...)
		bf := filepath.Join(t.TempDir(), "bf16.safetensors")
		toBF16(t, in, bf)
		orig, _ := os.ReadFile(bf)
		got, size := roundTrip(t, bf, codec.Lossless)
		if !bytes.Equal(got, orig) {
			t.Errorf("%s BF16: round trip differs", f[1])
		}
		ratio := float64(size) / float64(len(orig))
		t.Logf("%s BF16 lossless: %d of %d bytes (%.4f)", f[1], size, len(orig), ratio)
		if ratio > 0.70 {
			t.Errorf("%s BF16 lossless ratio %.4f over 0.70", f[1], ratio)
		}
	}
}

// toBF16 writes a BF16 copy of a F32 safetensors file (round to nearest
// even), keeping metadata.
func toBF16(t *testing.T, in, out string) {
	t.Helper()
	src, err := safetensors.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	h := &safetensors.Header{Metadata: src.Metadata()}
	for _, ti := range src.Tensors() {
		ti.DType = safetensors.BF16
		h.Tensors = append(h.Tensors, ti)
	}
	err = safetensors.WriteFile(out, h, func(name string) ([]byte, error) {
		b, err := src.ReadTensor(name)
		if err != nil {
			return nil, err
		}
		f, err := dtype.ToFloat32(nil, b, format.F32)
		if err != nil {
			return nil, err
		}
		return dtype.FromFloat32(nil, f, format.BF16)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSharded converts a checkpoint split in two shards with an index and
// checks every tensor and the metadata.
func TestSharded(t *testing.T) {
	dir := t.TempDir()
	shapes := map[string][]int64{"a.weight": {4, 8}, "b.weight": {16}, "c.bias": {3, 2, 2}}
	names := []string{"a.weight", "b.weight", "c.bias"}
	data := map[string][]byte{}
	weightMap := map[string]string{}
	for i, shard := range []string{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"} {
		h := &safetensors.Header{}
		for j, n := range names {
			if j%2 != i {
				continue
			}
			h.Tensors = append(h.Tensors, safetensors.TensorInfo{Name: n, DType: safetensors.F32, Shape: shapes[n]})
			numel := int64(1)
			for _, d := range shapes[n] {
				numel *= d
			}
			data[n] = bytes.Repeat([]byte{byte(j + 1), 0, 0x80, 0x3f}, int(numel))
			weightMap[n] = shard
		}
		if err := safetensors.WriteFile(filepath.Join(dir, shard), h, func(n string) ([]byte, error) { return data[n], nil }); err != nil {
			t.Fatal(err)
		}
	}
	idx, _ := json.Marshal(map[string]any{"metadata": map[string]string{"total_size": "128"}, "weight_map": weightMap})
	if err := os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), idx, 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := safetensors.OpenPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out := filepath.Join(dir, "m.nwc")
	if _, err := convert.ToNWC(context.Background(), src, out, nil); err != nil {
		t.Fatal(err)
	}
	r, err := reader.Open(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if len(r.Index().Sources) != 2 || r.Metadata()["total_size"] != "128" {
		t.Fatalf("sources %v, metadata %v", r.Index().Sources, r.Metadata())
	}
	for _, n := range names {
		tt, err := r.Tensor(n)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tt.Bytes()
		if err != nil || !bytes.Equal(got, data[n]) {
			t.Errorf("%s: %v", n, err)
		}
	}
	// Two sources: decoding writes one canonical file with every tensor.
	back := filepath.Join(dir, "back.safetensors")
	if err := convert.ToSafetensors(r.Reader, back, "bf16"); err != nil {
		t.Fatal(err)
	}
	sf, err := safetensors.Open(back)
	if err != nil {
		t.Fatal(err)
	}
	defer sf.Close()
	if len(sf.Tensors()) != 3 || sf.Tensors()[0].DType != safetensors.BF16 {
		t.Fatalf("decoded tensors %v", sf.Tensors())
	}
}

// TestFailureLeavesNothing checks that a failed conversion leaves no file
// under the target name and does not touch the input.
func TestFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.safetensors")
	h := &safetensors.Header{Tensors: []safetensors.TensorInfo{{Name: "x", DType: safetensors.F32, Shape: []int64{2}}}}
	if err := safetensors.WriteFile(in, h, func(string) ([]byte, error) { return make([]byte, 8), nil }); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(in)
	src, err := safetensors.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out := filepath.Join(dir, "out.nwc")
	_, err = convert.ToNWC(context.Background(), src, out, &convert.Options{Codec: "no-such-codec"})
	if !errors.Is(err, format.ErrUnsupported) {
		t.Fatalf("unknown codec: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("directory holds %v after a failed conversion", entries)
	}
	after, _ := os.ReadFile(in)
	if !bytes.Equal(before, after) {
		t.Fatal("input changed")
	}
	if err := convert.ToSafetensors(nil, out, "f8"); err == nil {
		t.Fatal("unknown output dtype accepted")
	}
}
