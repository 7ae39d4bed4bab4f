package lossless

import (
	"bytes"
	"errors"
	"testing"
)

// dtypeByIndex picks a dtype for fuzz inputs from a byte.
func dtypeByIndex(i uint8) string {
	all := allDTypes()
	return all[int(i)%len(all)]
}

// FuzzDecompress feeds arbitrary data to Decompress with the element count
// the data claims, so mutations reach the block decoders. Whatever decodes
// must survive a further round trip.
func FuzzDecompress(f *testing.F) {
	// The corpus in testdata/fuzz/FuzzDecompress holds one valid stream
	// per method and layout; these add the smallest cases.
	f.Add([]byte{1, 1, 2, 0}, uint8(1))
	f.Add([]byte{1, 1, 2, 2, 0, 2, 0, 2, 0x7f, 0x80, 0x00, 0x80}, uint8(1))
	f.Fuzz(func(t *testing.T, src []byte, dt uint8) {
		dtype := dtypeByIndex(dt)
		n := 0
		if len(src) > headerLen {
			v, w := uvarint(src[headerLen:])
			// Larger counts are rejected before any work that depends
			// on them; skipping them keeps executions fast.
			if w <= 0 || v > 1<<20 {
				return
			}
			n = int(v)
		}
		got, err := Decompress(nil, src, dtype, n)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		if len(got) != n*dtypes[dtype].size {
			t.Fatalf("decoded %d bytes for %d elements of %s", len(got), n, dtype)
		}
		z, err := Compress(nil, got, dtype)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Decompress(nil, z, dtype, n)
		if err != nil || !bytes.Equal(again, got) {
			t.Fatalf("round trip of decoded data failed: %v", err)
		}
	})
}

// FuzzRoundTrip checks that Compress output decodes to its input and is
// within MaxEncodedLen, for every layout.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{}, uint8(0))
	f.Add([]byte("\x00\x00\x80\x3f\x00\x00\xc0\xbf"), uint8(5))
	f.Add(bytes.Repeat([]byte("abcdefgh"), 300), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, dt uint8) {
		dtype := dtypeByIndex(dt)
		size := dtypes[dtype].size
		data = data[:len(data)/size*size]
		z, err := Compress(nil, data, dtype)
		if err != nil {
			t.Fatal(err)
		}
		n := len(data) / size
		if max, err := MaxEncodedLen(dtype, n); err != nil || len(z) > max {
			t.Fatalf("compressed %d bytes, MaxEncodedLen %d (%v)", len(z), max, err)
		}
		got, err := Decompress(nil, z, dtype, n)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatal("round trip differs")
		}
	})
}
