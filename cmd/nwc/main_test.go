package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/safetensors"
)

func runOK(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if code := run(args, &out, &errb); code != 0 {
		t.Fatalf("nwc %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	return out.String()
}

// TestConvertDecodeInfo runs the CLI end to end on a small checkpoint.
func TestConvertDecodeInfo(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "m.safetensors")
	h := &safetensors.Header{Metadata: map[string]string{"arch": "test"}, Tensors: []safetensors.TensorInfo{
		{Name: "w", DType: safetensors.F32, Shape: []int64{8, 4}},
		{Name: "b", DType: safetensors.F32, Shape: []int64{8}},
	}}
	if err := safetensors.WriteFile(in, h, func(n string) ([]byte, error) {
		return bytes.Repeat([]byte{0, 0, 0x80, 0x3f}, map[string]int{"w": 32, "b": 8}[n]), nil
	}); err != nil {
		t.Fatal(err)
	}
	nwcPath := filepath.Join(dir, "m.nwc")
	var conv map[string]any
	if err := json.Unmarshal([]byte(runOK(t, "convert", in, "-o", nwcPath, "--codec", "raw", "--json")), &conv); err != nil {
		t.Fatal(err)
	}
	if conv["tensors"] != 2.0 {
		t.Fatalf("convert --json: %v", conv)
	}
	var info fileInfo
	if err := json.Unmarshal([]byte(runOK(t, "info", "--json", nwcPath)), &info); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(nwcPath)
	if info.FileBytes != st.Size() || len(info.Tensors) != 2 || info.Tensors[0].Name != "w" || info.Tensors[0].BitsPerWeight != 32 {
		t.Fatalf("info: %+v", info)
	}
	// Honest bits per weight: everything but the 1-D tensor's bytes, over
	// the matrix's 32 weights.
	if want := float64(st.Size()-32) * 8 / 32; info.BitsPerWeight != want {
		t.Fatalf("bits_per_weight %v, want %v", info.BitsPerWeight, want)
	}
	// The parts add up to the whole.
	var sum float64
	for _, v := range info.Breakdown {
		sum += v
	}
	if math.Abs(sum-info.BitsPerWeight) > 1e-9 || info.Breakdown["payload"] != 32 {
		t.Fatalf("breakdown %v sums to %v, want %v with payload 32", info.Breakdown, sum, info.BitsPerWeight)
	}
	if !strings.Contains(runOK(t, "info", nwcPath), "bits per weight") {
		t.Fatal("info text lacks the summary")
	}
	back := filepath.Join(dir, "back.safetensors")
	runOK(t, "decode", nwcPath, "-o", back)
	a, _ := os.ReadFile(in)
	b, _ := os.ReadFile(back)
	if !bytes.Equal(a, b) {
		t.Fatal("decode did not reproduce the input")
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		nil,
		{"frobnicate"},
		{"convert"},
		{"convert", "in.safetensors"},
		{"convert", "in.safetensors", "-o", "x.nwc", "--jobs", "-1"},
		{"convert", "in.safetensors", "-o", "x.nwc", "--rate", "guess"},
		{"decode", "x.nwc"},
		{"info"},
		{"info", "--nope", "x"},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("nwc %v: exit %d, want 2", args, code)
		}
	}
	var out, errb bytes.Buffer
	bad := filepath.Join(t.TempDir(), "bad.nwc")
	os.WriteFile(bad, []byte("not an nwc file at all, but long enough to have a trailer......"), 0o644)
	if code := run([]string{"info", bad}, &out, &errb); code != 1 {
		t.Errorf("info on an invalid file: exit %d, want 1", code)
	}
}

// TestConvertIndexUncompressed checks that --index-uncompressed stores a
// plain msgpack index where the default stores zstd, and that the file
// decodes to the same bytes.
func TestConvertIndexUncompressed(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "m.safetensors")
	h := &safetensors.Header{}
	for i := range 30 {
		h.Tensors = append(h.Tensors, safetensors.TensorInfo{Name: fmt.Sprintf("layers.%d.weight", i), DType: safetensors.F32, Shape: []int64{2, 2}})
	}
	if err := safetensors.WriteFile(in, h, func(string) ([]byte, error) { return make([]byte, 16), nil }); err != nil {
		t.Fatal(err)
	}
	index := func(path string) []byte {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		tr := b[len(b)-format.TrailerLen:]
		off, n := binary.LittleEndian.Uint64(tr[0:]), binary.LittleEndian.Uint64(tr[8:])
		return b[off : off+n]
	}
	def, plain := filepath.Join(dir, "def.nwc"), filepath.Join(dir, "plain.nwc")
	runOK(t, "convert", in, "-o", def)
	runOK(t, "convert", in, "-o", plain, "--index-uncompressed")
	if !format.IndexCompressed(index(def)) {
		t.Fatal("default index not compressed")
	}
	if ix := index(plain); format.IndexCompressed(ix) || ix[0]&0xf0 != 0x80 {
		t.Fatalf("--index-uncompressed index starts with %#02x, want a fixmap", ix[0])
	}
	for _, p := range []string{def, plain} {
		runOK(t, "decode", p, "-o", p+".safetensors")
		a, _ := os.ReadFile(in)
		b, _ := os.ReadFile(p + ".safetensors")
		if !bytes.Equal(a, b) {
			t.Fatalf("%s: decode did not reproduce the input", p)
		}
	}
}
