// Package safetensors reads and writes the safetensors checkpoint format.
//
// A safetensors file is an 8-byte little-endian header length N, N bytes of
// UTF-8 JSON describing every tensor, and a data section holding the raw
// tensor bytes back to back. The reader is strict: it applies every check of
// the reference Rust implementation (and rejects duplicate JSON keys, which
// encoding/json would silently accept), so that a file it accepts can be
// trusted by any other implementation. Tensor data is read lazily through an
// io.ReaderAt, so opening a multi-gigabyte checkpoint costs only its header.
//
// The writer streams: it writes the header first and then one tensor at a
// time, so it never holds more than the tensor being written. A stored header
// can be reproduced verbatim with NewWriterRaw, which makes a read/write round
// trip byte-identical.
//
// Sharded checkpoints (a model.safetensors.index.json naming several shard
// files) are read with OpenIndex; OpenPath opens any of the three layouts
// behind the common Source interface.
package safetensors

import (
	"errors"
	"fmt"
	"math"
	"strconv"

	"github.com/nwcodec/nwc/format"
)

// DType names the element type of a tensor exactly as it is spelled in the
// header. It is the container's type, so tensors move between safetensors
// and .nwc files without conversion of names.
type DType = format.DType

// The element types accepted by the reader and writer.
const (
	F64    = format.F64
	F32    = format.F32
	F16    = format.F16
	BF16   = format.BF16
	F8E4M3 = format.F8E4M3
	F8E5M2 = format.F8E5M2
	I64    = format.I64
	I32    = format.I32
	I16    = format.I16
	I8     = format.I8
	U64    = format.U64
	U32    = format.U32
	U16    = format.U16
	U8     = format.U8
	Bool   = format.Bool

	F8E8M0     = format.F8E8M0
	F8E4M3FNUZ = format.F8E4M3FNUZ
	F8E5M2FNUZ = format.F8E5M2FNUZ
	C64        = format.C64
)

// TensorInfo describes one tensor. Offset and Length locate its bytes: in a
// File they are absolute offsets in the file; in a Header passed to
// NewWriter they are ignored and computed by the writer.
type TensorInfo struct {
	Name   string
	DType  DType
	Shape  []int64
	Offset int64
	Length int64
}

// NumElements returns the product of the dimensions (1 for a 0-d tensor).
// It returns -1 if a dimension is negative or the product overflows int64.
func (t TensorInfo) NumElements() int64 {
	n := int64(1)
	for _, d := range t.Shape {
		if d < 0 {
			return -1
		}
		if d != 0 && n > math.MaxInt64/d {
			return -1
		}
		n *= d
	}
	return n
}

// clone returns t with its own copy of Shape so callers cannot alias the
// reader's state.
func (t TensorInfo) clone() TensorInfo {
	t.Shape = append([]int64(nil), t.Shape...)
	return t
}

// byteSize returns the number of data bytes a tensor of the given dtype and
// shape occupies, checking every multiplication for overflow.
func byteSize(d DType, shape []int64) (int64, bool) {
	n := TensorInfo{Shape: shape}.NumElements()
	if n < 0 {
		return 0, false
	}
	sz := int64(d.Size())
	if n > math.MaxInt64/sz {
		return 0, false
	}
	return n * sz, true
}

// Default limits applied when the corresponding Options field is zero.
const (
	// DefaultMaxHeaderSize is the header size cap of the reference
	// implementation.
	DefaultMaxHeaderSize = 100_000_000
	// DefaultMaxRank bounds the number of dimensions of one tensor.
	DefaultMaxRank = 64
)

// Options tunes the reader's limits. The zero value, and a nil *Options,
// select the defaults.
type Options struct {
	// MaxHeaderSize caps the JSON header length. The header is read into
	// memory, so this bounds the allocation driven by the first 8 bytes.
	MaxHeaderSize int64
	// MaxRank caps the number of dimensions of any tensor.
	MaxRank int
}

func (o *Options) maxHeaderSize() int64 {
	if o == nil || o.MaxHeaderSize <= 0 {
		return DefaultMaxHeaderSize
	}
	return o.MaxHeaderSize
}

func (o *Options) maxRank() int {
	if o == nil || o.MaxRank <= 0 {
		return DefaultMaxRank
	}
	return o.MaxRank
}

// unlimited is used where the header is already in memory, so the caps that
// protect allocations have nothing left to protect.
var unlimited = &Options{MaxHeaderSize: math.MaxInt64, MaxRank: math.MaxInt32}

// Sentinel errors. Every error returned for bad input matches one of ErrFormat,
// ErrUnsupported or ErrTooLarge under errors.Is.
var (
	// ErrFormat reports input that is not a well-formed safetensors file or
	// index.
	ErrFormat = errors.New("safetensors: invalid format")
	// ErrUnsupported reports well-formed input using a feature this package
	// does not implement, such as an unknown dtype.
	ErrUnsupported = errors.New("safetensors: unsupported feature")
	// ErrTooLarge reports input exceeding a limit set in Options.
	ErrTooLarge = errors.New("safetensors: limit exceeded")

	// ErrWriteOrder reports a WriteTensor call for a tensor other than the
	// next one in data order.
	ErrWriteOrder = errors.New("safetensors: tensor written out of order")
	// ErrWriteSize reports tensor data whose length disagrees with its dtype
	// and shape.
	ErrWriteSize = errors.New("safetensors: tensor data has wrong length")
	// ErrWriteIncomplete reports a Close before every tensor was written.
	ErrWriteIncomplete = errors.New("safetensors: not all tensors written")
)

// A FormatError reports malformed input. Off is the byte offset in the file
// where the problem was found, or -1 when no single offset applies.
type FormatError struct {
	Off int64
	Msg string
}

// Error formats the message with the offset, when known.
func (e *FormatError) Error() string {
	if e.Off < 0 {
		return "safetensors: " + e.Msg
	}
	return "safetensors: " + e.Msg + " at offset " + strconv.FormatInt(e.Off, 10)
}

// Is makes every FormatError match ErrFormat.
func (e *FormatError) Is(target error) bool { return target == ErrFormat }

// An UnsupportedError reports a feature this package does not implement. Off
// is the byte offset in the file, or -1 when no single offset applies.
type UnsupportedError struct {
	Off int64
	Msg string
}

// Error formats the message with the offset, when known.
func (e *UnsupportedError) Error() string {
	if e.Off < 0 {
		return "safetensors: unsupported " + e.Msg
	}
	return "safetensors: unsupported " + e.Msg + " at offset " + strconv.FormatInt(e.Off, 10)
}

// Is makes every UnsupportedError match ErrUnsupported.
func (e *UnsupportedError) Is(target error) bool { return target == ErrUnsupported }

// A LimitError reports input exceeding one of the Options limits.
type LimitError struct {
	Off   int64
	What  string // the limited quantity, e.g. "header size"
	Value int64  // the value found in the input, saturated at math.MaxInt64
	Limit int64
}

// Error names the limit, the offending value and where it was found.
func (e *LimitError) Error() string {
	return fmt.Sprintf("safetensors: %s %d exceeds limit %d at offset %d", e.What, e.Value, e.Limit, e.Off)
}

// Is makes every LimitError match ErrTooLarge.
func (e *LimitError) Is(target error) bool { return target == ErrTooLarge }

func formatErr(off int64, format string, args ...any) error {
	return &FormatError{Off: off, Msg: fmt.Sprintf(format, args...)}
}
