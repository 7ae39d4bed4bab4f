package format

import (
	"bytes"
	"errors"
	"testing"
)

// TestDecompressIndexOneFrame: a compressed index is exactly one frame;
// bytes, a skippable frame or a second frame after it are format errors.
func TestDecompressIndexOneFrame(t *testing.T) {
	ix := bytes.Repeat([]byte("index bytes "), 50)
	c := CompressIndex(ix)
	if !IndexCompressed(c) {
		t.Fatal("the test index did not compress")
	}
	if got, err := DecompressIndex(c, 0, 1<<20); err != nil || !bytes.Equal(got, ix) {
		t.Fatalf("one frame: %v", err)
	}
	second := CompressIndex(bytes.Repeat([]byte("more "), 50))
	for name, tail := range map[string][]byte{
		"byte":      {0},
		"skippable": {0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 1, 2},
		"frame":     second,
		"truncated": nil,
	} {
		s := append(bytes.Clone(c), tail...)
		if tail == nil {
			s = c[:len(c)-1]
		}
		if _, err := DecompressIndex(s, 0, 1<<20); !errors.Is(err, ErrFormat) {
			t.Errorf("%s after the frame: %v, want a format error", name, err)
		}
	}
}
