package format

import (
	"errors"
	"fmt"
)

// Sentinel errors. Every error returned for bad input wraps exactly one of
// them, so callers classify failures with errors.Is.
var (
	// ErrFormat reports a file that violates FORMAT.md.
	ErrFormat = errors.New("nwc: invalid format")
	// ErrChecksum reports a CRC32C mismatch: the bytes were damaged.
	ErrChecksum = errors.New("nwc: checksum error")
	// ErrUnsupported reports a valid file this implementation cannot handle:
	// an unknown major version, dtype or codec.
	ErrUnsupported = errors.New("nwc: unsupported feature")
	// ErrLimit reports input that exceeds a configured limit (tensor count,
	// rank, name length, index size, decoded size).
	ErrLimit = errors.New("nwc: limit exceeded")
	// ErrNotFound reports a tensor name that is not in the file.
	ErrNotFound = errors.New("nwc: tensor not found")
)

// A FormatError describes a violation of FORMAT.md at a byte offset of the
// file (Off < 0 when no single offset applies).
type FormatError struct {
	Off    int64
	Tensor string // the tensor concerned, if any
	Msg    string
}

func (e *FormatError) Error() string {
	s := "nwc: invalid format"
	if e.Tensor != "" {
		s += fmt.Sprintf(": tensor %q", e.Tensor)
	}
	if e.Off >= 0 {
		s += fmt.Sprintf(" at offset %#x", e.Off)
	}
	return s + ": " + e.Msg
}

// Is reports whether target is ErrFormat.
func (e *FormatError) Is(target error) bool { return target == ErrFormat }

// Errorf returns a *FormatError at offset off.
func Errorf(off int64, format string, args ...any) error {
	return &FormatError{Off: off, Msg: fmt.Sprintf(format, args...)}
}

// TensorErrorf returns a *FormatError about one tensor.
func TensorErrorf(tensor string, off int64, format string, args ...any) error {
	return &FormatError{Off: off, Tensor: tensor, Msg: fmt.Sprintf(format, args...)}
}

// A ChecksumError reports a CRC32C mismatch of one checksummed region.
type ChecksumError struct {
	What      string // "preamble", "trailer", "index", or a section's description
	Off       int64  // offset of the region in the file
	Want, Got uint32
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("nwc: checksum error in %s at offset %#x: stored %08x, computed %08x", e.What, e.Off, e.Want, e.Got)
}

// Is reports whether target is ErrChecksum.
func (e *ChecksumError) Is(target error) bool { return target == ErrChecksum }

// An UnsupportedError reports a feature this implementation does not know.
type UnsupportedError string

func (e UnsupportedError) Error() string { return "nwc: unsupported feature: " + string(e) }

// Is reports whether target is ErrUnsupported.
func (e UnsupportedError) Is(target error) bool { return target == ErrUnsupported }

// A LimitError reports a value over a configured limit.
type LimitError struct {
	What  string
	Value uint64
	Limit uint64
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("nwc: limit exceeded: %s is %d, limit %d", e.What, e.Value, e.Limit)
}

// Is reports whether target is ErrLimit.
func (e *LimitError) Is(target error) bool { return target == ErrLimit }

// Class names the sentinel err wraps: "format", "checksum", "unsupported",
// "limit", "notfound", or "" for other errors (I/O). The conformance suite
// and nwc-verify --json report it.
//
// When err joins several errors (errors.Join, or a reader's Verify), the
// first one with a class decides: FORMAT.md §6 orders the checks, and a
// reader joins its findings in that order.
func Class(err error) string {
	switch e := err.(type) {
	case nil:
		return ""
	case interface{ Unwrap() []error }:
		for _, sub := range e.Unwrap() {
			if c := Class(sub); c != "" {
				return c
			}
		}
		return ""
	case interface{ Is(error) bool }:
		// One of this package's typed errors: classified below.
	case interface{ Unwrap() error }:
		if c := Class(e.Unwrap()); c != "" {
			return c
		}
	}
	switch {
	case errors.Is(err, ErrChecksum):
		return "checksum"
	case errors.Is(err, ErrUnsupported):
		return "unsupported"
	case errors.Is(err, ErrLimit):
		return "limit"
	case errors.Is(err, ErrNotFound):
		return "notfound"
	case errors.Is(err, ErrFormat):
		return "format"
	}
	return ""
}
