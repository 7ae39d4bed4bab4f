package safetensors

import (
	"errors"
	"io"

	"github.com/nwcodec/nwc/internal/sniff"
)

// ErrWrongFormat reports a file that is recognisably something other than
// safetensors (a GGUF file, a llama2.c checkpoint, a .nwc file, an image).
// Errors matching it also match ErrFormat.
var ErrWrongFormat = errors.New("safetensors: not a safetensors file")

// A WrongFormatError says what a file given as safetensors actually is.
type WrongFormatError struct {
	// Kind names the file type with its article, such as "a GGUF file
	// (llama.cpp)" or "a .nwc file".
	Kind string
}

// Error says what the file is.
func (e *WrongFormatError) Error() string {
	return "safetensors: not a safetensors file but " + e.Kind
}

// Is reports whether target is ErrWrongFormat or ErrFormat.
func (e *WrongFormatError) Is(target error) bool {
	return target == ErrWrongFormat || target == ErrFormat
}

// wrongFormat replaces err, the failure to parse r as safetensors, by a
// WrongFormatError when r's first bytes identify another file type; a
// header field decoded from another format's magic number only confuses.
func wrongFormat(r io.ReaderAt, size int64, err error) error {
	if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrTooLarge) {
		return err
	}
	switch k := sniff.Detect(r, size); k {
	case sniff.Unknown, sniff.Safetensors:
		return err
	default:
		return &WrongFormatError{Kind: string(k)}
	}
}
