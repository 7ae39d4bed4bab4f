package quant

import (
	"maps"
	"slices"
	"testing"

	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/internal/shareddata"
	"github.com/nwcodec/nwc/safetensors"
)

// loadF32Tensors returns the F32 tensors of rank 2 of the checkpoint at
// path, by name.
func loadF32Tensors(t *testing.T, path string) map[string][]float32 {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]float32{}
	for _, ti := range f.Tensors() {
		if ti.DType != safetensors.F32 || len(ti.Shape) != 2 {
			continue
		}
		b, err := f.ReadTensor(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		if out[ti.Name], err = dtype.ToFloat32(nil, b, format.F32); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// TestRealWeights reports the quality of both formats on every matrix of
// the stories260K checkpoint, each flattened to one row (its rows of 64
// are shorter than a Q4_K super-block), and checks it against the
// Gaussian results.
func TestRealWeights(t *testing.T) {
	tensors := loadF32Tensors(t, shareddata.Path(t, "stories260K", "stories260K.safetensors"))
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
