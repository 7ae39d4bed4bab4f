package rans

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestStreamDecoderPieces decodes streams in pieces of random sizes, most
// not multiples of the four lanes, and checks the symbols against the
// input and that Close accepts only a fully decoded stream.
func TestStreamDecoderPieces(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 5))
	tab := randomTable(t, r, -10, 21, 12)
	for _, n := range []int{0, 1, 3, 4, 5, 17, 64, 1000, 4099} {
		syms := gaussSyms(n, 6, uint64(n)) // escapes included
		enc := roundTrip(t, syms, []*Table{tab})
		var sd StreamDecoder
		if err := sd.Reset(enc, tab, n); err != nil {
			t.Fatal(err)
		}
		got := make([]int32, 0, n)
		for len(got) < n {
			k := min(n-len(got), r.IntN(40))
			piece := make([]int32, k)
			if err := sd.Next(piece); err != nil {
				t.Fatalf("n=%d: %v", n, err)
			}
			got = append(got, piece...)
			if len(got) < n {
				if err := sd.Close(); !errors.Is(err, ErrCorrupt) {
					t.Fatalf("n=%d: Close after %d symbols: err = %v", n, len(got), err)
				}
			}
		}
		if !slices.Equal(got, syms) {
			t.Fatalf("n=%d: pieces decode differently", n)
		}
		if err := sd.Close(); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		if err := sd.Next(make([]int32, 1)); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("n=%d: a symbol past the end: err = %v", n, err)
		}
		if n > 0 {
			if err := sd.Reset(enc[:len(enc)-1], tab, n); err == nil {
				piece := make([]int32, n)
				if err = sd.Next(piece); err == nil {
					err = sd.Close()
				}
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("n=%d: truncated stream: err = %v", n, err)
				}
			}
		}
	}
}
