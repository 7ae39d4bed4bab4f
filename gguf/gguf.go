// Package gguf writes GGUF files, the model format of llama.cpp and the
// runtimes built on ggml (version 3 of the format of ggml's docs/gguf.md),
// and exports the tensors of a .nwc file of a Llama model as one.
//
// A GGUF file is a header (magic, version, tensor and key-value counts),
// typed metadata key-value pairs, one descriptor per tensor (name,
// dimensions innermost first, element type, offset), then the tensor data,
// every tensor starting at a multiple of the file's alignment
// (general.alignment, 32 bytes unless set). Header lays out the part before
// the data, so that the data can then be streamed tensor by tensor to the
// offsets it gives.
package gguf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// Version is the GGUF version written.
const Version = 3

// DefaultAlignment is the alignment of tensor data when general.alignment
// is not set.
const DefaultAlignment = 32

// KeyAlignment is the metadata key that sets the alignment.
const KeyAlignment = "general.alignment"

// ErrInvalid reports metadata or tensor descriptors that cannot be
// written as GGUF.
var ErrInvalid = errors.New("gguf: invalid")

// A Type is a ggml element type.
type Type uint32

// The element types written here (ggml's numbering).
const (
	F32  Type = 0
	F16  Type = 1
	BF16 Type = 30
)

// Size returns the bytes of one element, 0 for a type not listed above.
func (t Type) Size() int {
	switch t {
	case F32:
		return 4
	case F16, BF16:
		return 2
	}
	return 0
}

func (t Type) String() string {
	switch t {
	case F32:
		return "F32"
	case F16:
		return "F16"
	case BF16:
		return "BF16"
	}
	return fmt.Sprintf("Type(%d)", uint32(t))
}

// Metadata value types.
const (
	typeUint8   = 0
	typeInt8    = 1
	typeUint16  = 2
	typeInt16   = 3
	typeUint32  = 4
	typeInt32   = 5
	typeFloat32 = 6
	typeBool    = 7
	typeString  = 8
	typeArray   = 9
	typeUint64  = 10
	typeInt64   = 11
	typeFloat64 = 12
)

// A KV is one metadata pair. Value is one of uint8, int8, uint16, int16,
// uint32, int32, uint64, int64, float32, float64, bool, string, or a slice
// of one of those.
type KV struct {
	Key   string
	Value any
}

// A TensorInfo describes one tensor: Dims innermost first (ggml's ne: a
// row-major matrix of R rows of C columns is {C, R}).
type TensorInfo struct {
	Name string
	Dims []uint64
	Type Type
}

// Bytes returns the size of the tensor's data.
func (t TensorInfo) Bytes() (uint64, error) {
	n := uint64(t.Type.Size())
	if n == 0 {
		return 0, fmt.Errorf("%w: tensor %q has unsupported type %v", ErrInvalid, t.Name, t.Type)
	}
	for _, d := range t.Dims {
		hi, lo := bits.Mul64(n, d)
		if hi != 0 || lo > math.MaxInt64 {
			return 0, fmt.Errorf("%w: tensor %q of dims %v overflows", ErrInvalid, t.Name, t.Dims)
		}
		n = lo
	}
	return n, nil
}

// A Layout is where Header put things: the data section starts at
// DataOffset, tensor i at DataOffset+Offsets[i], and the file is Size bytes
// long (the last tensor padded to the alignment too).
type Layout struct {
	Alignment  int
	DataOffset int64
	Offsets    []int64
	Size       int64
}

// Header encodes the header, metadata and tensor descriptors of a GGUF
// file, padded to the alignment, and returns them with the layout of the
// data that follows. The alignment is the uint32 value of a
// general.alignment pair, else DefaultAlignment; it must be a power of two.
func Header(kvs []KV, tensors []TensorInfo) ([]byte, Layout, error) {
	lay := Layout{Alignment: DefaultAlignment}
	seen := map[string]bool{}
	for _, kv := range kvs {
		if seen[kv.Key] {
			return nil, Layout{}, fmt.Errorf("%w: metadata key %q twice", ErrInvalid, kv.Key)
		}
		seen[kv.Key] = true
		if kv.Key == KeyAlignment {
			a, ok := kv.Value.(uint32)
			if !ok || a == 0 || a&(a-1) != 0 || a > 1<<30 {
				return nil, Layout{}, fmt.Errorf("%w: %s must be a uint32 power of two, not %v (%T)", ErrInvalid, KeyAlignment, kv.Value, kv.Value)
			}
			lay.Alignment = int(a)
		}
	}
	var b bytes.Buffer
	b.WriteString("GGUF")
	le := binary.LittleEndian
	b.Write(le.AppendUint32(nil, Version))
	b.Write(le.AppendUint64(nil, uint64(len(tensors))))
	b.Write(le.AppendUint64(nil, uint64(len(kvs))))
	for _, kv := range kvs {
		writeString(&b, kv.Key)
		if err := writeValue(&b, kv.Value, true); err != nil {
			return nil, Layout{}, fmt.Errorf("metadata %q: %w", kv.Key, err)
		}
	}
	align := int64(lay.Alignment)
	var off int64
	names := map[string]bool{}
	for _, t := range tensors {
		if names[t.Name] {
			return nil, Layout{}, fmt.Errorf("%w: tensor %q twice", ErrInvalid, t.Name)
		}
		names[t.Name] = true
		n, err := t.Bytes()
		if err != nil {
			return nil, Layout{}, err
		}
		writeString(&b, t.Name)
		b.Write(le.AppendUint32(nil, uint32(len(t.Dims))))
		for _, d := range t.Dims {
			b.Write(le.AppendUint64(nil, d))
		}
		b.Write(le.AppendUint32(nil, uint32(t.Type)))
		b.Write(le.AppendUint64(nil, uint64(off)))
		lay.Offsets = append(lay.Offsets, off)
		off += pad(int64(n), align)
	}
	b.Write(make([]byte, pad(int64(b.Len()), align)-int64(b.Len())))
	lay.DataOffset = int64(b.Len())
	lay.Size = lay.DataOffset + off
	return b.Bytes(), lay, nil
}

func pad(n, align int64) int64 { return (n + align - 1) / align * align }

func writeString(b *bytes.Buffer, s string) {
	b.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(s))))
	b.WriteString(s)
}

// writeValue writes v's type (when typed) and value.
func writeValue(b *bytes.Buffer, v any, typed bool) error {
	le := binary.LittleEndian
	put := func(t uint32, p []byte) {
		if typed {
			b.Write(le.AppendUint32(nil, t))
		}
		b.Write(p)
	}
	switch v := v.(type) {
	case uint8:
		put(typeUint8, []byte{v})
	case int8:
		put(typeInt8, []byte{byte(v)})
	case uint16:
		put(typeUint16, le.AppendUint16(nil, v))
	case int16:
		put(typeInt16, le.AppendUint16(nil, uint16(v)))
	case uint32:
		put(typeUint32, le.AppendUint32(nil, v))
	case int32:
		put(typeInt32, le.AppendUint32(nil, uint32(v)))
	case uint64:
		put(typeUint64, le.AppendUint64(nil, v))
	case int64:
		put(typeInt64, le.AppendUint64(nil, uint64(v)))
	case float32:
		put(typeFloat32, le.AppendUint32(nil, math.Float32bits(v)))
	case float64:
		put(typeFloat64, le.AppendUint64(nil, math.Float64bits(v)))
	case bool:
		x := byte(0)
		if v {
			x = 1
		}
		put(typeBool, []byte{x})
	case string:
		if typed {
			b.Write(le.AppendUint32(nil, typeString))
		}
		writeString(b, v)
	case []uint8:
		return writeArray(b, typeUint8, v)
	case []int8:
		return writeArray(b, typeInt8, v)
	case []uint16:
		return writeArray(b, typeUint16, v)
	case []int16:
		return writeArray(b, typeInt16, v)
	case []uint32:
		return writeArray(b, typeUint32, v)
	case []int32:
		return writeArray(b, typeInt32, v)
	case []uint64:
		return writeArray(b, typeUint64, v)
	case []int64:
		return writeArray(b, typeInt64, v)
	case []float32:
		return writeArray(b, typeFloat32, v)
	case []float64:
		return writeArray(b, typeFloat64, v)
	case []bool:
		return writeArray(b, typeBool, v)
	case []string:
		return writeArray(b, typeString, v)
	default:
		return fmt.Errorf("%w: value of type %T", ErrInvalid, v)
	}
	return nil
}

func writeArray[E any](b *bytes.Buffer, t uint32, vs []E) error {
	b.Write(binary.LittleEndian.AppendUint32(nil, typeArray))
	b.Write(binary.LittleEndian.AppendUint32(nil, t))
	b.Write(binary.LittleEndian.AppendUint64(nil, uint64(len(vs))))
	for _, v := range vs {
		if err := writeValue(b, v, false); err != nil {
			return err
		}
	}
	return nil
}
