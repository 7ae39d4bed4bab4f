package safetensors

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
)

// prefixSize is the length of the little-endian header length that starts
// every file.
const prefixSize = 8

// A File is an open safetensors file whose header has been validated. Tensor
// data is read on demand from the underlying io.ReaderAt. A File is safe for
// concurrent use if its io.ReaderAt is.
type File struct {
	r    io.ReaderAt
	size int64
	h    *header
}

// NewReader validates the header of the safetensors file of the given size
// read from r. It reads only the header; tensor data is read by Open and
// ReadTensor. A nil opts selects the default limits.
func NewReader(r io.ReaderAt, size int64, opts *Options) (*File, error) {
	if size < prefixSize {
		return nil, formatErr(0, "file of %d bytes is too short for the header length", size)
	}
	var prefix [prefixSize]byte
	if _, err := r.ReadAt(prefix[:], 0); err != nil {
		return nil, readErr(err)
	}
	n := binary.LittleEndian.Uint64(prefix[:])
	if max := opts.maxHeaderSize(); n > uint64(max) {
		return nil, &LimitError{Off: 0, What: "header size", Value: clampInt64(n), Limit: max}
	}
	if n > uint64(size-prefixSize) {
		return nil, formatErr(0, "header length %d exceeds the %d bytes after it", n, size-prefixSize)
	}
	raw, err := readFull(r, prefixSize, int64(n))
	if err != nil {
		return nil, err
	}
	h, err := parseHeader(raw, prefixSize, opts)
	if err != nil {
		return nil, err
	}
	dataStart := prefixSize + int64(n)
	if want := size - dataStart; h.dataLen != want {
		return nil, formatErr(dataStart, "tensors cover %d bytes but the data section has %d", h.dataLen, want)
	}
	for i := range h.tensors {
		h.tensors[i].Offset += dataStart
	}
	return &File{r: r, size: size, h: h}, nil
}

func clampInt64(n uint64) int64 {
	if n > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(n)
}

// readFull reads n bytes at off. Callers have already checked that n fits
// within the size given to NewReader, which is what justifies allocating it.
func readFull(r io.ReaderAt, off, n int64) ([]byte, error) {
	b := make([]byte, n)
	m, err := r.ReadAt(b, off)
	if err != nil && !(err == io.EOF && m == len(b)) {
		return nil, readErr(err)
	}
	return b, nil
}

// readErr turns a premature EOF into io.ErrUnexpectedEOF: the size given to
// NewReader promised the bytes were there.
func readErr(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("safetensors: read: %w", err)
}

// Tensors returns the tensors in data (file offset) order. Empty tensors
// sharing an offset keep their header order.
func (f *File) Tensors() []TensorInfo {
	ts := make([]TensorInfo, len(f.h.tensors))
	for i, t := range f.h.tensors {
		ts[i] = t.clone()
	}
	return ts
}

// Tensor returns the named tensor's description.
func (f *File) Tensor(name string) (TensorInfo, bool) {
	i, ok := f.h.index[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.h.tensors[i].clone(), true
}

// Metadata returns a copy of the __metadata__ map, or nil if the header has
// none.
func (f *File) Metadata() map[string]string {
	if !f.h.hasMeta {
		return nil
	}
	return maps.Clone(f.h.meta)
}

// HasMetadata reports whether the header has a __metadata__ object, which
// distinguishes an absent map from an empty one.
func (f *File) HasMetadata() bool { return f.h.hasMeta }

// RawHeader returns a copy of the header JSON exactly as stored, including
// any padding. Passing it to NewWriterRaw reproduces the file byte for byte.
func (f *File) RawHeader() []byte { return bytes.Clone(f.h.raw) }

// DataOffset returns the file offset of the data section.
func (f *File) DataOffset() int64 { return prefixSize + int64(len(f.h.raw)) }

// Size returns the file size given to NewReader.
func (f *File) Size() int64 { return f.size }

// Open returns a reader for the named tensor's bytes. Nothing is read until
// the caller reads. An unknown name yields an error matching fs.ErrNotExist.
func (f *File) Open(name string) (*io.SectionReader, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, notFound(name)
	}
	return io.NewSectionReader(f.r, t.Offset, t.Length), nil
}

// ReadTensor reads the named tensor's bytes, exactly as stored (little
// endian).
func (f *File) ReadTensor(name string) ([]byte, error) {
	t, ok := f.Tensor(name)
	if !ok {
		return nil, notFound(name)
	}
	return readFull(f.r, t.Offset, t.Length)
}

func notFound(name string) error {
	return fmt.Errorf("safetensors: tensor %q: %w", name, fs.ErrNotExist)
}

// A ReadCloser is a File backed by an os.File that it owns.
type ReadCloser struct {
	f *os.File
	File
}

// Open opens and validates the named safetensors file with default limits.
func Open(name string) (*ReadCloser, error) {
	return OpenFile(name, nil)
}

// OpenFile is like Open with explicit limits. Errors about the content are
// prefixed with the file name and still match the package sentinels.
func OpenFile(name string, opts *Options) (*ReadCloser, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("not a regular file: %w", ErrFormat)}
	}
	r, err := NewReader(f, fi.Size(), opts)
	if err != nil {
		err = wrongFormat(f, fi.Size(), err)
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &ReadCloser{f: f, File: *r}, nil
}

// Close closes the underlying file.
func (rc *ReadCloser) Close() error { return rc.f.Close() }
