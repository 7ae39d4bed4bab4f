package spec

import "errors"

// The error classes of FORMAT.md §6. The reference decoder reports every
// failure wrapped in one of them, independently of the format package, so
// that tests can check that it and the fast path classify a bad file alike.
var (
	// ErrFormat: the bytes violate FORMAT.md.
	ErrFormat = errors.New("spec: invalid format")
	// ErrChecksum: a CRC32C or SHA-256 does not match.
	ErrChecksum = errors.New("spec: checksum error")
	// ErrUnsupported: valid, but not implemented here.
	ErrUnsupported = errors.New("spec: unsupported feature")
	// ErrLimit: a limit of FORMAT.md §5.4 was exceeded.
	ErrLimit = errors.New("spec: limit exceeded")
)
