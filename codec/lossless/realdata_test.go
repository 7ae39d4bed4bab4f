package lossless

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/internal/shareddata"
	"github.com/nwcodec/nwc/safetensors"
)

// realFiles are the safetensors checkpoints the ratio tests read, relative
// to the shared data directory.
var realFiles = []string{
	"stories260K/stories260K.safetensors",
	"vision/ppocr_det.safetensors",
	"vision/ppocr_cls.safetensors",
}

// A tensor is one F32 tensor of a checkpoint.
type tensor struct {
	name string
	f32  []byte
}

// readF32Tensors returns the F32 tensors of the checkpoint at path in data
// order, which makes runs repeatable.
func readF32Tensors(tb testing.TB, path string) []tensor {
	tb.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	var ts []tensor
	for _, ti := range f.Tensors() {
		if ti.DType != safetensors.F32 {
			continue
		}
		b, err := f.ReadTensor(ti.Name)
		if err != nil {
			tb.Fatal(err)
		}
		ts = append(ts, tensor{ti.Name, b})
	}
	return ts
}

// fromF32 re-encodes little-endian F32 bytes as the float type dt, rounding
// to nearest even as package dtype does (BF16 keeps NaNs quiet). Its callers
// pass whole F32 elements and a float type, so an error is a bug in the test.
func fromF32(f32 []byte, dt format.DType) []byte {
	x, err := dtype.ToFloat32(nil, f32, format.F32)
	if err != nil {
		panic(err)
	}
	out, err := dtype.FromFloat32(nil, x, dt)
	if err != nil {
		panic(err)
	}
	return out
}

func toBF16(f32 []byte) []byte { return fromF32(f32, format.BF16) }
func toF16(f32 []byte) []byte  { return fromF32(f32, format.F16) }
func toF64(f32 []byte) []byte  { return fromF32(f32, format.F64) }

// ratioBar is the largest accepted compressed/raw ratio for BF16 weights.
const ratioBar = 0.70

func TestRealRatios(t *testing.T) {
	conv := []struct {
		dtype string
		conv  func([]byte) []byte
		bar   float64
	}{
		{"BF16", toBF16, ratioBar},
		{"F16", toF16, 0.90},
		{"F32", func(b []byte) []byte { return b }, 0.95},
		{"F64", toF64, 0.60},
	}
	for _, file := range realFiles {
		ts := readF32Tensors(t, shareddata.Path(t, file))
		for _, c := range conv {
			t.Run(fmt.Sprintf("%s/%s", filepath.Base(file), c.dtype), func(t *testing.T) {
				var raw, comp int
				for _, tn := range ts {
					src := c.conv(tn.f32)
					z, err := Compress(nil, src, c.dtype)
					if err != nil {
						t.Fatalf("%s: %v", tn.name, err)
					}
					n := len(src) / dtypes[c.dtype].size
					got, err := Decompress(nil, z, c.dtype, n)
					if err != nil {
						t.Fatalf("%s: %v", tn.name, err)
					}
					if !bytes.Equal(got, src) {
						t.Fatalf("%s: round trip differs", tn.name)
					}
					raw += len(src)
					comp += len(z)
				}
				r := float64(comp) / float64(raw)
				t.Logf("%d tensors, %d -> %d bytes, ratio %.4f", len(ts), raw, comp, r)
				if r > c.bar {
					t.Errorf("ratio %.4f exceeds bar %.2f", r, c.bar)
				}
			})
		}
	}
}

// benchTensors returns the tensors of the largest checkpoint converted to
// dtype, and their total size.
func benchTensors(b *testing.B, dtype string) ([][]byte, int) {
	ts := readF32Tensors(b, shareddata.Path(b, "vision", "ppocr_det.safetensors"))
	conv := map[string]func([]byte) []byte{
		"BF16": toBF16, "F16": toF16, "F64": toF64,
		"F32": func(b []byte) []byte { return b },
	}[dtype]
	var out [][]byte
	total := 0
	for _, tn := range ts {
		out = append(out, conv(tn.f32))
		total += len(out[len(out)-1])
	}
	return out, total
}

func BenchmarkCompress(b *testing.B) {
	for _, dtype := range []string{"BF16", "F16", "F32"} {
		b.Run(dtype, func(b *testing.B) {
			ts, total := benchTensors(b, dtype)
			b.SetBytes(int64(total))
			var buf []byte
			for b.Loop() {
				for _, t := range ts {
					var err error
					if buf, err = Compress(buf[:0], t, dtype); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

func BenchmarkDecompress(b *testing.B) {
	for _, dtype := range []string{"BF16", "F16", "F32"} {
		b.Run(dtype, func(b *testing.B) {
			ts, total := benchTensors(b, dtype)
			zs := make([][]byte, len(ts))
			for i, t := range ts {
				var err error
				if zs[i], err = Compress(nil, t, dtype); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(total))
			var buf []byte
			for b.Loop() {
				for i, z := range zs {
					var err error
					if buf, err = Decompress(buf[:0], z, dtype, len(ts[i])/dtypes[dtype].size); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// TestEveryDType checks that the codec covers exactly the dtypes a .nwc
// file can hold, with their sizes.
func TestEveryDType(t *testing.T) {
	if len(dtypes) != len(format.DTypes) {
		t.Errorf("lossless has %d dtypes, format %d", len(dtypes), len(format.DTypes))
	}
	for _, dt := range format.DTypes {
		if f, ok := dtypes[string(dt)]; !ok || f.size != dt.Size() {
			t.Errorf("%s: %+v, %v; want size %d", dt, f, ok, dt.Size())
		}
	}
}
