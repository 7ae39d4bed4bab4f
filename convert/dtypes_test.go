package convert_test

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/safetensors"
)

// TestEveryDType converts a checkpoint holding a matrix of every dtype a
// .nwc file can hold, with a lossless and a lossy codec. Decoding in the
// original dtypes gives back every tensor a lossy codec may not touch bit
// for bit (all of them with lossless), and decoding as BF16 converts the
// real types and leaves C64, which has no real value, as it was.
func TestEveryDType(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "every.safetensors")
	rng := rand.New(rand.NewPCG(1, 2))
	data := map[string][]byte{}
	h := &safetensors.Header{Metadata: map[string]string{"format": "pt"}}
	for _, dt := range format.DTypes {
		name := "m." + string(dt)
		shape := []int64{64, 96}
		var b []byte
		if dt.IsFloat() {
			w := make([]float32, 64*96)
			for i := range w {
				w[i] = float32(rng.NormFloat64() * 0.02)
			}
			var err error
			if b, err = dtype.FromFloat32(nil, w, dt); err != nil {
				t.Fatal(err)
			}
		} else {
			b = make([]byte, 64*96*dt.Size())
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			if dt == format.Bool {
				for i := range b {
					b[i] &= 1
				}
			}
		}
		data[name] = b
		h.Tensors = append(h.Tensors, safetensors.TensorInfo{Name: name, DType: dt, Shape: shape})
	}
	if err := safetensors.WriteFile(in, h, func(name string) ([]byte, error) { return data[name], nil }); err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{codec.Lossless, "ecsq"} {
		t.Run(id, func(t *testing.T) {
			r, _ := toVerifiedNWC(t, in, &convert.Options{Codec: id, MinElements: 1})
			lossy := 0
			for _, tt := range r.Tensors() {
				got, err := tt.Bytes()
				if err != nil {
					t.Fatalf("%s: %v", tt.Name(), err)
				}
				if tt.Codec() != codec.Lossless {
					lossy++
					if !tt.DType().IsFloat() {
						t.Errorf("%s (%s) coded with %s", tt.Name(), tt.DType(), tt.Codec())
					}
					continue
				}
				if !bytes.Equal(got, data[tt.Name()]) {
					t.Errorf("%s: lossless bytes differ", tt.Name())
				}
			}
			if id == codec.Lossless {
				back := filepath.Join(t.TempDir(), "back.safetensors")
				if err := convert.ToSafetensors(r.Reader, back, convert.DTypeOrig); err != nil {
					t.Fatal(err)
				}
				if b, _ := os.ReadFile(back); !bytes.Equal(b, orig) {
					t.Error("decoded file differs from the original")
				}
			} else if lossy != 6 {
				t.Errorf("%d tensors coded lossily, want the 6 real float types", lossy)
			}
			bf := filepath.Join(t.TempDir(), "bf16.safetensors")
			if err := convert.ToSafetensors(r.Reader, bf, "bf16"); err != nil {
				t.Fatal(err)
			}
			f, err := safetensors.Open(bf)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if n := len(f.Tensors()); n != len(format.DTypes) {
				t.Fatalf("%d tensors decoded as bf16, want %d", n, len(format.DTypes))
			}
			for _, ti := range f.Tensors() {
				from := format.DType(strings.TrimPrefix(ti.Name, "m."))
				want := from // integers and the kept types stay as they are
				if from.IsFloat() {
					want = format.BF16
				}
				if ti.DType != want {
					t.Errorf("%s decoded as bf16 has dtype %s, want %s", ti.Name, ti.DType, want)
				}
				if !from.IsFloat() {
					if b, _ := f.ReadTensor(ti.Name); !bytes.Equal(b, data[ti.Name]) {
						t.Errorf("%s: bytes changed when decoding as bf16", ti.Name)
					}
				}
			}
		})
	}
}
