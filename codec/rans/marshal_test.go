package rans

import (
	"bytes"
	"encoding"
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

var (
	_ encoding.BinaryAppender    = (*Table)(nil)
	_ encoding.BinaryMarshaler   = (*Table)(nil)
	_ encoding.BinaryUnmarshaler = (*Table)(nil)
)

func TestMarshalGolden(t *testing.T) {
	tab, err := NewTable(-2, []uint32{0, 0, 5, 1000, 0, 10}, 9, 10)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tab.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		10,   // precision
		6,    // N
		3,    // zigzag(-2)
		0, 1, // two zeros
		5,          // 5
		0xe8, 0x07, // 1000
		0, 0, // one zero
		10, // 10
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("MarshalBinary = % x, want % x", got, want)
	}
	var u Table
	if err := u.UnmarshalBinary(want); err != nil {
		t.Fatal(err)
	}
	if !u.Equal(tab) || u.EscapeFreq() != 9 {
		t.Errorf("UnmarshalBinary gave min %d freqs %v escape %d", u.Min(), u.Freqs(), u.EscapeFreq())
	}
}

func TestMarshalRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 9))
	mins := []int32{math.MinInt32, -1 << 20, -3, 0, 77, math.MaxInt32 - MaxSymbols}
	for k := range 200 {
		n := 1 + r.IntN(MaxSymbols)
		if k%3 == 0 {
			n = 1 + r.IntN(8)
		}
		tab := randomTable(t, r, mins[k%len(mins)], n, uint(MinPrecision+r.IntN(MaxPrecision-MinPrecision+1)))
		b, err := tab.AppendBinary([]byte{0xAA})
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, 0xBB) // ParseTable must stop at the table's end
		u, m, err := ParseTable(b[1:])
		if err != nil {
			t.Fatalf("table %d: %v", k, err)
		}
		if m != len(b)-2 || !u.Equal(tab) {
			t.Fatalf("table %d: consumed %d of %d bytes, equal %v", k, m, len(b)-2, u.Equal(tab))
		}
		var v Table
		if err := v.UnmarshalBinary(b[1:]); !errors.Is(err, ErrTable) {
			t.Fatalf("UnmarshalBinary accepted trailing data: %v", err)
		}
	}
}

func TestParseTableErrors(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		off  int
	}{
		{"empty", nil, 0},
		{"precision-low", []byte{9, 1, 0, 1}, 0},
		{"precision-high", []byte{17, 1, 0, 1}, 0},
		{"no-count", []byte{10}, 1},
		{"zero-count", []byte{10, 0}, 2},
		{"count-too-large", []byte{10, 0x81, 0x20, 0, 1}, 1},
		{"count-non-minimal", []byte{10, 0x81, 0x00, 0, 1}, 1},
		{"count-overflow", []byte{10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, 1},
		{"min-too-large", []byte{10, 1, 0xff, 0xff, 0xff, 0xff, 0x1f, 1}, 2},
		{"range-overflow", []byte{10, 2, 0xfe, 0xff, 0xff, 0xff, 0x0f, 1, 1}, 2},
		{"freq-too-large", []byte{10, 1, 0, 0x80, 0x08}, 3},
		{"no-room-for-escape", []byte{10, 2, 0, 0xff, 0x07, 1}, 5},
		{"zero-run-too-long", []byte{10, 2, 0, 0, 5}, 4},
		{"split-zero-run", []byte{10, 3, 0, 0, 0, 0, 0, 5}, 5},
		{"all-zero", []byte{10, 2, 0, 0, 1}, 5},
		{"truncated-freqs", []byte{10, 3, 0, 5, 5}, 5},
		{"truncated-varint", []byte{10, 1, 0, 0x85}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := ParseTable(tt.data)
			var te *TableError
			if !errors.As(err, &te) || !errors.Is(err, ErrTable) {
				t.Fatalf("err = %v, want *TableError", err)
			}
			if te.Offset != tt.off {
				t.Errorf("offset %d, want %d (%v)", te.Offset, tt.off, err)
			}
		})
	}
}

// TestParseTableTruncated checks that every proper prefix of a valid table
// is rejected.
func TestParseTableTruncated(t *testing.T) {
	tab := randomTable(t, rand.New(rand.NewPCG(4, 4)), -100, 300, 14)
	b, _ := tab.MarshalBinary()
	for n := range len(b) {
		if _, _, err := ParseTable(b[:n]); !errors.Is(err, ErrTable) {
			t.Fatalf("prefix of %d/%d bytes: err = %v", n, len(b), err)
		}
	}
}
