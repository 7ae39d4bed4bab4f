package spec

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/huff0"
)

// decodeHuff0Klauspost decodes a huff0 4X payload as codec/lossless does.
func decodeHuff0Klauspost(p []byte, m int) ([]byte, error) {
	s, rest, err := huff0.ReadTable(p, nil)
	if err != nil {
		return nil, err
	}
	out, err := s.Decoder().Decompress4X(make([]byte, 0, m), rest)
	if err == nil && len(out) != m {
		err = errors.New("short")
	}
	return out, err
}

// TestHuff0MatchesKlauspost decodes huff0.Compress4X output of every table
// log and of alphabets from 2 to 256 symbols.
func TestHuff0MatchesKlauspost(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	coded := 0
	for _, alphabet := range []int{2, 3, 17, 100, 129, 200, 256} {
		for _, n := range []int{13, 100, 799, 800, 5000, 70000} {
			in := make([]byte, n)
			for i := range in {
				// Geometric-ish over the alphabet, so code lengths vary.
				v := 0
				for v < alphabet-1 && r.IntN(3) != 0 {
					v++
				}
				in[i] = byte(v)
			}
			for log := uint8(5); log <= 11; log++ {
				p, _, err := huff0.Compress4X(in, &huff0.Scratch{TableLog: log, Reuse: huff0.ReusePolicyNone})
				if err != nil {
					continue
				}
				coded++
				got, err := huff0Decode4X(p, n)
				if err != nil || !bytes.Equal(got, in) {
					t.Fatalf("alphabet %d n %d log %d: %v", alphabet, n, log, err)
				}
				if _, err := huff0Decode4X(p, n+4); !errors.Is(err, ErrFormat) {
					t.Fatalf("wrong size accepted: %v", err)
				}
			}
		}
	}
	if coded < 100 {
		t.Fatalf("only %d payloads coded", coded)
	}
}

// TestHuff0Hostile checks tree descriptions and stream layouts that break
// the rules, against klauspost's decoder too.
func TestHuff0Hostile(t *testing.T) {
	streams := []byte{1, 0, 1, 0, 1, 0, 0x81, 0x81, 0x81, 0x81} // jump table, four 1-byte streams
	tests := []struct {
		name string
		p    []byte
	}{
		{"empty", nil},
		{"one byte", []byte{0x80}},
		{"direct weights truncated", []byte{0xff, 0x11}},
		{"weight 12", append([]byte{0x80, 0xc0}, streams...)},
		{"weights all zero", append([]byte{0x81, 0x00}, streams...)},
		{"rest not a power of two", append([]byte{0x82, 0x21}, streams...)},
		{"one symbol of weight 1", append([]byte{0x80, 0x20}, streams...)},
		{"fse weights truncated", []byte{0x20, 1, 2, 3}},
		{"fse weights log 7", append([]byte{0x04, 0x02, 0, 0, 0x80}, streams...)},
		{"no jump table", []byte{0x80, 0x10, 1, 0}},
		{"stream 4 empty", []byte{0x80, 0x10, 1, 0, 1, 0, 1, 0, 0x81, 0x81, 0x81}},
		{"stream ends in zero", []byte{0x80, 0x10, 1, 0, 1, 0, 1, 0, 0x81, 0x00, 0x81, 0x81}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := huff0Decode4X(tt.p, 16); !errors.Is(err, ErrFormat) {
				t.Fatalf("spec: %v", err)
			}
			if _, err := decodeHuff0Klauspost(tt.p, 16); err == nil {
				t.Fatal("klauspost accepts")
			}
		})
	}
	// Two symbols of weight 1: 1-bit codes, symbol 0 is code 0. Each
	// stream of 4 symbols is one byte: four bits of code under the padding.
	p := []byte{0x80, 0x10, 1, 0, 1, 0, 1, 0, 0x15, 0x1a, 0x10, 0x1f}
	got, err := huff0Decode4X(p, 16)
	want := []byte{0, 1, 0, 1, 1, 0, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1}
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("got %v %v, want %v", got, err, want)
	}
	if k, err := decodeHuff0Klauspost(p, 16); err != nil || !bytes.Equal(k, want) {
		t.Fatalf("klauspost: %v %v", k, err)
	}
}
