package quant

import (
	"encoding/binary"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// dataDir finds the shared data directory next to the module root, or
// skips the test (fails it under CI) when the data is missing.
func dataDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the package directory")
		}
		dir = parent
	}
	data := filepath.Join(dir, "..", "shared", "data")
	if _, err := os.Stat(filepath.Join(data, "stories260K", "stories260K.safetensors")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI: shared test data missing: %v", err)
		}
		t.Skipf("shared test data missing: %v", err)
	}
	return data
}

// loadF32Tensors is a minimal safetensors reader for the test: it returns
// the F32 tensors of rank 2 by name.
func loadF32Tensors(t *testing.T, path string) map[string][]float32 {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	hlen := binary.LittleEndian.Uint64(b)
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(b[8:8+hlen], &hdr); err != nil {
		t.Fatal(err)
	}
	body := b[8+hlen:]
	out := map[string][]float32{}
	for name, raw := range hdr {
		var ti struct {
			Dtype   string   `json:"dtype"`
			Shape   []int    `json:"shape"`
			Offsets [2]int64 `json:"data_offsets"`
		}
		if name == "__metadata__" || json.Unmarshal(raw, &ti) != nil || ti.Dtype != "F32" || len(ti.Shape) != 2 {
			continue
		}
		out[name] = bytesToFloats(body[ti.Offsets[0]:ti.Offsets[1]])
	}
	return out
}

// TestRealWeights reports the quality of both formats on every matrix of
// the stories260K checkpoint, each flattened to one row (its rows of 64
// are shorter than a Q4_K super-block), and checks it against the
// Gaussian results.
func TestRealWeights(t *testing.T) {
	tensors := loadF32Tensors(t, filepath.Join(dataDir(t), "stories260K", "stories260K.safetensors"))
	if len(tensors) == 0 {
		t.Fatal("no F32 matrices found")
	}
	var all, q4, rtn []float32
	for _, name := range slices.Sorted(maps.Keys(tensors)) {
		x := tensors[name]
		y, err := DequantizeQ4K(nil, QuantizeQ4K(nil, x))
		if err != nil {
			t.Fatal(err)
		}
		r := RTN{Bits: 4}
		z, err := r.Dequantize(nil, r.Quantize(nil, x), len(x))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, x...)
		q4 = append(q4, y[:len(x)]...)
		rtn = append(rtn, z...)
	}
	sq, sr := sqnr(all, q4), sqnr(all, rtn)
	t.Logf("stories260K, %d matrices, %d weights: Q4_K %.2f dB, RTN int4 g128 %.2f dB", len(tensors), len(all), sq, sr)
	if sq < 18 || sr < 16 {
		t.Errorf("SQNR Q4_K %.2f dB, RTN %.2f dB: far below the Gaussian figures", sq, sr)
	}
}
