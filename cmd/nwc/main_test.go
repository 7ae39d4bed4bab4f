package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
