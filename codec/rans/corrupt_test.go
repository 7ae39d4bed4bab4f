package rans

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestDecodeTruncated checks that every proper prefix of a stream is
// rejected, for several sizes and with escapes present.
func TestDecodeTruncated(t *testing.T) {
	r := rand.New(rand.NewPCG(12, 12))
	tab := randomTable(t, r, -10, 21, 12)
	tabs := []*Table{tab, randomTable(t, r, 0, 5, 10)}
	for _, n := range []int{1, 2, 3, 4, 5, 9, 64, 301} {
		syms := gaussSyms(n, 6, uint64(n)) // sigma 6 overflows the tables: escapes
		for _, ts := range [][]*Table{tabs[:1], tabs} {
			enc := roundTrip(t, syms, ts)
			dst := make([]int32, n)
			for k := range len(enc) {
				err := Decode(enc[:k], ts, dst)
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("n=%d: prefix %d/%d: err = %v", n, k, len(enc), err)
				}
			}
			// Too many or too few symbols requested.
			if err := Decode(enc, ts, make([]int32, n+1)); !errors.Is(err, ErrCorrupt) {
				t.Errorf("n=%d decoded as %d: err = %v", n, n+1, err)
			}
			if err := Decode(enc, ts, make([]int32, n-1)); !errors.Is(err, ErrCorrupt) {
				t.Errorf("n=%d decoded as %d: err = %v", n, n-1, err)
			}
		}
	}
}

// TestDecodeBitFlips flips every bit of a stream. An entropy coder has no
// redundancy to detect every change (a flip can turn a symbol into another
// of the same frequency), so a flipped stream must either be rejected or
// decode to symbols whose encoding is exactly the flipped stream: the
// format is canonical.
func TestDecodeBitFlips(t *testing.T) {
	syms := gaussSyms(500, 5, 3)
	tab, err := Build(syms[:50], 11)
	if err != nil {
		t.Fatal(err)
	}
	tabs := []*Table{tab}
	enc := roundTrip(t, syms, tabs)
	if enc[0] == 0 {
		t.Fatal("test stream has no escapes")
	}
	dst := make([]int32, len(syms))
	buf := make([]byte, len(enc))
	detected := 0
	for bit := range 8 * len(enc) {
		copy(buf, enc)
		buf[bit/8] ^= 1 << (bit % 8)
		err := Decode(buf, tabs, dst)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("bit %d: error %v is not ErrCorrupt", bit, err)
			}
			detected++
			continue
		}
		re, err := Encode(nil, dst, tabs)
		if err != nil || !slices.Equal(re, buf) {
			t.Fatalf("bit %d: accepted stream is not the encoding of what it decodes to", bit)
		}
	}
	// Most flips derail the lanes and are caught by the final-state check.
	t.Logf("%d of %d flips detected", detected, 8*len(enc))
	if detected < 8*len(enc)*9/10 {
		t.Errorf("only %d of %d flips detected", detected, 8*len(enc))
	}
}

func TestDecodeCorrupt(t *testing.T) {
	tab, err := NewTable(0, []uint32{100, 200, 300, 400}, 24, 10)
	if err != nil {
		t.Fatal(err)
	}
	tabs := []*Table{tab}
	// -1 is escaped as zigzag 1, a single byte.
	syms := []int32{0, 1, -1, 2, 3, 3, 2}
	enc, err := Encode(nil, syms, tabs)
	if err != nil {
		t.Fatal(err)
	}
	if enc[0] != 1 || enc[1] != 1 {
		t.Fatalf("unexpected escape stream % x", enc[:2])
	}
	rest := enc[2:]
	cat := func(parts ...[]byte) []byte { return slices.Concat(parts...) }
	plain, _ := Encode(nil, []int32{0, 1, 2, 3}, tabs)

	tests := []struct {
		name string
		data []byte
		n    int
		off  int
	}{
		{"empty-input", nil, 7, 0},
		{"data-for-no-symbols", []byte{0}, 0, 0},
		{"trailing-byte", cat(enc, []byte{0}), 7, len(enc)},
		{"trailing-word", cat(enc, []byte{0, 0}), 7, len(enc)},
		{"escape-length-overflow", cat([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, rest), 7, 0},
		{"escape-length-non-minimal", cat([]byte{0x81, 0x00, 1}, rest), 7, 0},
		{"escape-length-exceeds-input", cat([]byte{0x7f, 1}, rest), 7, 1},
		{"state-below-bound", cat([]byte{0, 0xff, 0xff, 0, 0}), 1, 1},
		{"escape-coded-directly", cat([]byte{1, 2}, rest), 7, 1},
		{"escape-non-minimal", cat([]byte{2, 0x81, 0x00}, rest), 7, 1},
		{"escape-overflow", cat([]byte{6, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, rest), 7, 1},
		{"escape-truncated", cat([]byte{1, 0x81}, rest), 7, 1},
		{"escape-unused-data", cat([]byte{2, 1, 1}, rest), 7, 2},
		{"escape-without-escapes", cat([]byte{1, 1}, plain[1:]), 4, 1},
		{"escape-stream-missing", cat([]byte{0}, rest), 7, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Decode(tt.data, tabs, make([]int32, tt.n))
			var ce *CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want *CorruptError", err)
			}
			if ce.Offset != tt.off {
				t.Errorf("offset %d, want %d (%v)", ce.Offset, tt.off, err)
			}
		})
	}
}
