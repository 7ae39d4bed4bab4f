package safetensors

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/nwcodec/nwc/internal/atomicfile"
)

// Header describes the file NewWriter produces.
type Header struct {
	// Metadata becomes the __metadata__ object. A nil map omits it; an
	// empty non-nil map writes an empty object.
	Metadata map[string]string
	// Tensors lists the tensors in the order their data will be written.
	// Only Name, DType and Shape are used; offsets are computed.
	Tensors []TensorInfo
}

// A Writer streams a safetensors file: the header is written when the Writer
// is created, then each tensor's data in turn, so at most one tensor is held
// in memory at a time (by the caller).
type Writer struct {
	w       io.Writer
	tensors []TensorInfo // data order, absolute offsets
	next    int
	err     error // sticky: set once bytes may have been lost
}

// NewWriter writes the canonical header for h to w and returns a Writer
// expecting the tensors' data in the order of h.Tensors. The header is
// validated exactly as the reader would, so any file the Writer completes can
// be read back.
func NewWriter(w io.Writer, h *Header) (*Writer, error) {
	ts := make([]TensorInfo, len(h.Tensors))
	var pos int64
	for i, t := range h.Tensors {
		if t.Name == metadataKey {
			return nil, formatErr(-1, "tensor name %q is reserved", t.Name)
		}
		if !t.DType.Valid() {
			return nil, &UnsupportedError{Off: -1, Msg: fmt.Sprintf("dtype %q of tensor %q", t.DType, t.Name)}
		}
		for _, d := range t.Shape {
			if d < 0 {
				return nil, formatErr(-1, "tensor %q: negative dimension in shape %v", t.Name, t.Shape)
			}
		}
		size, ok := byteSize(t.DType, t.Shape)
		if !ok || pos > math.MaxInt64-size {
			return nil, formatErr(-1, "tensor %q: size overflows", t.Name)
		}
		ts[i] = TensorInfo{Name: t.Name, DType: t.DType, Shape: t.Shape, Offset: pos, Length: size}
		pos += size
	}
	return newWriter(w, encodeHeader(h.Metadata, ts))
}

// NewWriterRaw writes rawHeader verbatim as the header and returns a Writer
// expecting the tensors' data in data (offset) order, the order File.Tensors
// reports. rawHeader must pass the reader's checks, apart from the size
// limits, which guard allocations that have already been made.
func NewWriterRaw(w io.Writer, rawHeader []byte) (*Writer, error) {
	return newWriter(w, rawHeader)
}

func newWriter(w io.Writer, raw []byte) (*Writer, error) {
	h, err := parseHeader(raw, prefixSize, unlimited)
	if err != nil {
		return nil, err
	}
	dataStart := prefixSize + int64(len(raw))
	if h.dataLen > math.MaxInt64-dataStart {
		return nil, formatErr(-1, "file size overflows")
	}
	for i := range h.tensors {
		h.tensors[i].Offset += dataStart
	}
	var prefix [prefixSize]byte
	binary.LittleEndian.PutUint64(prefix[:], uint64(len(raw)))
	if _, err := w.Write(prefix[:]); err != nil {
		return nil, err
	}
	if _, err := w.Write(raw); err != nil {
		return nil, err
	}
	return &Writer{w: w, tensors: h.tensors}, nil
}

// Tensors returns the tensors in the order WriteTensor expects them, with the
// absolute file offsets they will occupy.
func (w *Writer) Tensors() []TensorInfo {
	ts := make([]TensorInfo, len(w.tensors))
	for i, t := range w.tensors {
		ts[i] = t.clone()
	}
	return ts
}

// expect checks that name is the next tensor due.
func (w *Writer) expect(name string) (TensorInfo, error) {
	if w.err != nil {
		return TensorInfo{}, w.err
	}
	if w.next >= len(w.tensors) {
		return TensorInfo{}, fmt.Errorf("%w: %q after the last tensor", ErrWriteOrder, name)
	}
	t := w.tensors[w.next]
	if name != t.Name {
		return TensorInfo{}, fmt.Errorf("%w: got %q, want %q", ErrWriteOrder, name, t.Name)
	}
	return t, nil
}

// WriteTensor writes the named tensor's data, which must be the next tensor
// in data order and exactly as long as its dtype and shape require. An order
// or length error writes nothing and may be retried; a write error is
// returned by every later call.
func (w *Writer) WriteTensor(name string, data []byte) error {
	t, err := w.expect(name)
	if err != nil {
		return err
	}
	if int64(len(data)) != t.Length {
		return fmt.Errorf("%w: tensor %q has %d bytes, want %d", ErrWriteSize, name, len(data), t.Length)
	}
	if _, err := w.w.Write(data); err != nil {
		w.err = fmt.Errorf("safetensors: writing tensor %q: %w", name, err)
		return w.err
	}
	w.next++
	return nil
}

// WriteTensorFrom copies the named tensor's data from r, which must supply at
// least the tensor's length in bytes; the copy never buffers the whole
// tensor. Because a short r leaves a partial tensor behind, any failure here
// is sticky.
func (w *Writer) WriteTensorFrom(name string, r io.Reader) error {
	t, err := w.expect(name)
	if err != nil {
		return err
	}
	if _, err := io.CopyN(w.w, r, t.Length); err != nil {
		if err == io.EOF {
			err = fmt.Errorf("%w: tensor %q: %w", ErrWriteSize, name, io.ErrUnexpectedEOF)
		} else {
			err = fmt.Errorf("safetensors: writing tensor %q: %w", name, err)
		}
		w.err = err
		return err
	}
	w.next++
	return nil
}

// WriteTensorFunc writes the named tensor's data in pieces: fn calls write
// with consecutive parts of it, as many as it likes, so that the tensor
// never needs to be in memory whole. The parts must add up to exactly the
// tensor's length. Because a failure leaves a partial tensor behind, it is
// sticky.
func (w *Writer) WriteTensorFunc(name string, fn func(write func([]byte) error) error) error {
	t, err := w.expect(name)
	if err != nil {
		return err
	}
	var n int64
	werr := fn(func(p []byte) error {
		if n+int64(len(p)) > t.Length {
			return fmt.Errorf("%w: tensor %q: more than %d bytes", ErrWriteSize, name, t.Length)
		}
		if _, err := w.w.Write(p); err != nil {
			return fmt.Errorf("safetensors: writing tensor %q: %w", name, err)
		}
		n += int64(len(p))
		return nil
	})
	if werr == nil && n != t.Length {
		werr = fmt.Errorf("%w: tensor %q has %d bytes, want %d", ErrWriteSize, name, n, t.Length)
	}
	if werr != nil {
		w.err = werr
		return werr
	}
	w.next++
	return nil
}

// SkipTensor marks the named tensor, which must be the next in data order,
// as written by the caller directly into the underlying file at the offset
// Tensors reports (with WriteAt, for example from several goroutines). The
// Writer has no way to check those bytes: the caller must write exactly the
// tensor's length.
func (w *Writer) SkipTensor(name string) error {
	if _, err := w.expect(name); err != nil {
		return err
	}
	w.next++
	return nil
}

// Close reports an error if any tensor has not been written. It does not
// close the underlying writer.
func (w *Writer) Close() error {
	if w.err != nil {
		return w.err
	}
	if w.next < len(w.tensors) {
		return fmt.Errorf("%w: %d of %d missing, next is %q", ErrWriteIncomplete,
			len(w.tensors)-w.next, len(w.tensors), w.tensors[w.next].Name)
	}
	return nil
}

// WriteFile writes a safetensors file for h to path, asking data for each
// tensor's bytes in order. The file is written under a temporary name in the
// same directory and renamed into place only when complete, so path never
// holds a partial file. The file is created with mode 0644.
func WriteFile(path string, h *Header, data func(name string) ([]byte, error)) error {
	return atomicfile.WriteFile(path, func(f io.Writer) error {
		w, err := NewWriter(f, h)
		if err != nil {
			return err
		}
		for _, t := range w.tensors {
			b, err := data(t.Name)
			if err != nil {
				return err
			}
			if err := w.WriteTensor(t.Name, b); err != nil {
				return err
			}
		}
		return w.Close()
	})
}
