package calib

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzRead checks that Read never panics, that it returns either a Set or
// an error, and that every Set it accepts survives a write and a re-read
// with the same weights and values.
func FuzzRead(f *testing.F) {
	seed, err := os.ReadFile(filepath.Join("testdata", "small.safetensors"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	f.Add(seed[:len(seed)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 1<<20 {
			return
		}
		s, err := Read(bytes.NewReader(b), int64(len(b)))
		if (s == nil) == (err == nil) {
			t.Fatalf("Read = %v, %v", s, err)
		}
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v does not wrap ErrFormat", err)
			}
			return
		}
		path := filepath.Join(t.TempDir(), "h.safetensors")
		if err := WriteHessians(path, s); err != nil {
			t.Fatal(err)
		}
		back, err := ReadHessians(path)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range s.Weights() {
			h, _ := s.Hessian(w)
			g, ok := back.Hessian(w)
			if !ok || g.N != h.N || g.Tokens != h.Tokens {
				t.Fatalf("%s: %+v after round trip, want %+v", w, g, h)
			}
			for i, v := range h.Data {
				if g.Data[i] != v && !(s.F64 == false && float64(float32(v)) == g.Data[i]) {
					t.Fatalf("%s: element %d = %v, want %v", w, i, g.Data[i], v)
				}
			}
		}
	})
}
