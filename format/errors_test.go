package format

import (
	"errors"
	"fmt"
	"io"
	"testing"
)

// TestClass checks that a joined error takes the class of its first
// classified member (FORMAT.md §6), however it is wrapped.
func TestClass(t *testing.T) {
	fe := Errorf(40, "padding byte is 0x07, want 0")
	ce := &ChecksumError{What: "section", Off: 64}
	ue := UnsupportedError("dtype F4")
	le := &LimitError{What: "tensor rank", Value: 33, Limit: 32}
	for _, c := range []struct {
		err  error
		want string
	}{
		{nil, ""},
		{io.ErrUnexpectedEOF, ""},
		{fe, "format"},
		{ce, "checksum"},
		{fmt.Errorf("tensor %q: %w", "a", ue), "unsupported"},
		{fmt.Errorf("%w: blob 0", ErrChecksum), "checksum"},
		{le, "limit"},
		{fmt.Errorf("%w: %q", ErrNotFound, "x"), "notfound"},
		{errors.Join(fe, ce), "format"},
		{errors.Join(ce, fe), "checksum"},
		{errors.Join(io.EOF, ue, fe), "unsupported"},
		{fmt.Errorf("verify: %w", errors.Join(le, ce)), "limit"},
		{errors.Join(io.EOF), ""},
		{ErrNotFound, "notfound"},
		{errors.New("disk on fire"), ""},
		{errors.Join(ErrFormat, ErrLimit), "format"},
	} {
		if got := Class(c.err); got != c.want {
			t.Errorf("Class(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
