package lossless

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/x448/float16"
)

// dataDir returns the shared data directory, found next to the module root,
// or ends the test: missing data fails under CI and skips elsewhere.
func dataDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("go.mod not found above the package directory")
		}
		dir = parent
	}
	data := filepath.Join(dir, "..", "shared", "data")
	if _, err := os.Stat(filepath.Join(data, "stories260K", "stories260K.safetensors")); err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("CI is set but the real model data is missing: %v", err)
		}
		tb.Skipf("real model data not available: %v", err)
	}
	return data
}

// realFiles are the safetensors checkpoints the ratio tests read.
var realFiles = []string{
	"stories260K/stories260K.safetensors",
	"vision/ppocr_det.safetensors",
	"vision/ppocr_cls.safetensors",
}

// A tensor is one F32 tensor of a checkpoint.
type tensor struct {
	name string
	off  uint64
	f32  []byte
}

// readF32Tensors parses the safetensors header of path itself, because the
// project's safetensors package is not a dependency of this one, and
// returns its F32 tensors in offset order.
func readF32Tensors(tb testing.TB, path string) []tensor {
	tb.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if len(raw) < 8 {
		tb.Fatalf("%s: too short", path)
	}
	hlen := binary.LittleEndian.Uint64(raw)
	if hlen > uint64(len(raw)-8) {
		tb.Fatalf("%s: header length %d exceeds file", path, hlen)
	}
	var hdr map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+hlen], &hdr); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	body := raw[8+hlen:]
	var ts []tensor
	for name, msg := range hdr {
		if name == "__metadata__" {
			continue
		}
		var info struct {
			DType   string   `json:"dtype"`
			Offsets []uint64 `json:"data_offsets"`
		}
		if err := json.Unmarshal(msg, &info); err != nil {
			tb.Fatalf("%s: tensor %s: %v", path, name, err)
		}
		if info.DType != "F32" {
			continue
		}
		if len(info.Offsets) != 2 || info.Offsets[0] > info.Offsets[1] || info.Offsets[1] > uint64(len(body)) {
			tb.Fatalf("%s: tensor %s: bad offsets %v", path, name, info.Offsets)
		}
		ts = append(ts, tensor{name, info.Offsets[0], body[info.Offsets[0]:info.Offsets[1]]})
	}
	// Map order is random; offset order makes runs repeatable.
	sort.Slice(ts, func(i, j int) bool { return ts[i].off < ts[j].off })
	return ts
}

// toBF16 converts little-endian F32 bytes to BF16 with round-to-nearest-even,
// keeping NaNs quiet.
func toBF16(f32 []byte) []byte {
	out := make([]byte, len(f32)/2)
	for i := range len(f32) / 4 {
		u := binary.LittleEndian.Uint32(f32[4*i:])
		var h uint16
		if u&0x7fffffff > 0x7f800000 {
			h = uint16(u>>16) | 0x40
		} else {
			h = uint16((u + 0x7fff + (u >> 16 & 1)) >> 16)
		}
		binary.LittleEndian.PutUint16(out[2*i:], h)
	}
	return out
}

// toF16 converts little-endian F32 bytes to IEEE half precision.
func toF16(f32 []byte) []byte {
	out := make([]byte, len(f32)/2)
	for i := range len(f32) / 4 {
		f := math.Float32frombits(binary.LittleEndian.Uint32(f32[4*i:]))
		binary.LittleEndian.PutUint16(out[2*i:], float16.Fromfloat32(f).Bits())
	}
	return out
}

// toF64 widens little-endian F32 bytes to F64.
func toF64(f32 []byte) []byte {
	out := make([]byte, 2*len(f32))
	for i := range len(f32) / 4 {
		f := math.Float32frombits(binary.LittleEndian.Uint32(f32[4*i:]))
		binary.LittleEndian.PutUint64(out[8*i:], math.Float64bits(float64(f)))
	}
	return out
}

// ratioBar is the largest accepted compressed/raw ratio for BF16 weights.
const ratioBar = 0.70

func TestRealRatios(t *testing.T) {
	dir := dataDir(t)
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
		ts := readF32Tensors(t, filepath.Join(dir, file))
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
	ts := readF32Tensors(b, filepath.Join(dataDir(b), "vision/ppocr_det.safetensors"))
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
