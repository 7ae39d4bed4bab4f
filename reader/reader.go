// Package reader reads .nwc files lazily through an io.ReaderAt. Opening a
// file reads only its preamble, trailer and index; a tensor's bytes are read
// and decoded when asked for, one chunk group at a time, in parallel.
//
// The format is specified in FORMAT.md. This package reads version 1 files
// of any minor version. A Reader is safe for concurrent use.
package reader

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/format"
)

// Options configure a Reader. The zero value selects the defaults.
type Options struct {
	// Limits bound what the reader accepts from the file.
	Limits format.Limits
	// Concurrency is the number of chunk groups decoded at once; 0 means
	// GOMAXPROCS.
	Concurrency int
}

// A Reader gives access to the tensors of one .nwc file.
type Reader struct {
	r        io.ReaderAt
	size     int64
	preamble format.Preamble
	trailer  format.Trailer
	index    *format.Index
	opts     Options
	tensors  []*Tensor
	byName   map[string]*Tensor

	blobMu sync.Mutex
	blobs  map[int]*blobEntry
}

type blobEntry struct {
	once sync.Once
	v    any
	err  error
}

// NewReader reads the preamble, trailer and index of the file of the
// given size read through r, and checks every structural rule of
// FORMAT.md that does not need the data sections.
func NewReader(r io.ReaderAt, size int64, opts *Options) (*Reader, error) {
	if size < 0 {
		return nil, errors.New("nwc: negative size")
	}
	rd := &Reader{r: r, size: size, blobs: map[int]*blobEntry{}}
	if opts != nil {
		rd.opts = *opts
	}
	rd.opts.Limits = rd.opts.Limits.WithDefaults()
	if rd.opts.Concurrency <= 0 {
		rd.opts.Concurrency = runtime.GOMAXPROCS(0)
	}
	if err := rd.init(); err != nil {
		return nil, err
	}
	return rd, nil
}

func (rd *Reader) init() error {
	if rd.size < format.PreambleLen+format.TrailerLen {
		return format.Errorf(0, "file of %d bytes is shorter than a preamble and a trailer", rd.size)
	}
	var pb [format.PreambleLen]byte
	if err := rd.readAt(pb[:], 0); err != nil {
		return err
	}
	p, err := format.ParsePreamble(pb[:])
	if err != nil {
		return err
	}
	rd.preamble = p
	var tb [format.TrailerLen]byte
	toff := rd.size - format.TrailerLen
	if err := rd.readAt(tb[:], toff); err != nil {
		return err
	}
	t, err := format.ParseTrailer(tb[:], toff, rd.size)
	if err != nil {
		return err
	}
	rd.trailer = t
	if t.IndexLength > uint64(rd.opts.Limits.MaxIndexSize) {
		return &format.LimitError{What: "index size", Value: t.IndexLength, Limit: uint64(rd.opts.Limits.MaxIndexSize)}
	}
	ib := make([]byte, t.IndexLength) // ≤ the file size, checked by ParseTrailer
	if err := rd.readAt(ib, int64(t.IndexOffset)); err != nil {
		return err
	}
	if got := format.CRC(ib); got != t.IndexCRC {
		return &format.ChecksumError{What: "index", Off: int64(t.IndexOffset), Want: t.IndexCRC, Got: got}
	}
	base := int64(t.IndexOffset)
	if format.IndexCompressed(ib) {
		raw, err := format.DecompressIndex(ib, base, rd.opts.Limits.MaxIndexSize)
		if err != nil {
			return err
		}
		ib, base = raw, -1 // offsets into a decompressed index are not file offsets
	}
	x, err := format.ParseIndex(ib, base, rd.opts.Limits)
	if err != nil {
		return err
	}
	lay := format.Layout{FileSize: uint64(rd.size), AlignLog2: p.AlignLog2, IndexOffset: t.IndexOffset}
	if err := x.Validate(lay, rd.opts.Limits); err != nil {
		return err
	}
	rd.index = x
	rd.tensors = make([]*Tensor, len(x.Tensors))
	rd.byName = make(map[string]*Tensor, len(x.Tensors))
	for i := range x.Tensors {
		t := &Tensor{r: rd, e: &x.Tensors[i]}
		rd.tensors[i] = t
		rd.byName[t.e.Name] = t
	}
	return nil
}

// readAt fills b from offset off, turning a short read into a
// format error: the layout said the bytes are there.
func (rd *Reader) readAt(b []byte, off int64) error {
	n, err := rd.r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		return format.Errorf(off+int64(n), "unexpected end of file reading %d bytes at %#x", len(b), off)
	}
	return fmt.Errorf("nwc: reading %d bytes at %#x: %w", len(b), off, err)
}

// readSection reads a section and checks its CRC32C.
func (rd *Reader) readSection(s format.Section, what string) ([]byte, error) {
	b := make([]byte, s.Length) // within the file: checked by Validate
	if err := rd.readAt(b, int64(s.Offset)); err != nil {
		return nil, err
	}
	if got := format.CRC(b); got != s.CRC {
		return nil, &format.ChecksumError{What: what, Off: int64(s.Offset), Want: s.CRC, Got: got}
	}
	return b, nil
}

// Version returns the file's major and minor format version.
func (rd *Reader) Version() (major, minor int) {
	return int(rd.preamble.Major), int(rd.preamble.Minor)
}

// Alignment returns the section alignment in bytes.
func (rd *Reader) Alignment() int { return 1 << rd.preamble.AlignLog2 }

// Size returns the file size.
func (rd *Reader) Size() int64 { return rd.size }

// Index returns the parsed index. The caller must not modify it.
func (rd *Reader) Index() *format.Index { return rd.index }

// Metadata returns the file's metadata map (nil if it has none). The caller
// must not modify it.
func (rd *Reader) Metadata() map[string]string { return rd.index.Metadata }

// Tensors returns the tensors in file order.
func (rd *Reader) Tensors() []*Tensor { return rd.tensors }

// Tensor returns the tensor called name, or an error wrapping
// format.ErrNotFound.
func (rd *Reader) Tensor(name string) (*Tensor, error) {
	t, ok := rd.byName[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", format.ErrNotFound, name)
	}
	return t, nil
}

// SourceHeader returns the verbatim safetensors header of source i.
func (rd *Reader) SourceHeader(i int) ([]byte, error) {
	if i < 0 || i >= len(rd.index.Sources) {
		return nil, fmt.Errorf("nwc: source %d out of range", i)
	}
	s := rd.index.Sources[i]
	return rd.readSection(s.Header, fmt.Sprintf("source %d header", i))
}

// blob returns blob i parsed by parse, once per Reader.
func (rd *Reader) blob(i int, parse func([]byte) (any, error)) (any, error) {
	rd.blobMu.Lock()
	e, ok := rd.blobs[i]
	if !ok {
		e = &blobEntry{}
		rd.blobs[i] = e
	}
	rd.blobMu.Unlock()
	e.once.Do(func() {
		b := rd.index.Blobs[i]
		if b.Section == nil {
			data, ok := codec.BuiltinBlob(b.Codec, b.SHA256)
			if !ok {
				e.err = format.UnsupportedError(fmt.Sprintf("built-in %s blob %x", b.Codec, b.SHA256[:8]))
				return
			}
			e.v, e.err = parse(data)
			return
		}
		var data []byte
		data, e.err = rd.readSection(*b.Section, fmt.Sprintf("blob %d", i))
		if e.err == nil {
			e.err = checkBlobSum(i, b, sha256.Sum256(data))
		}
		if e.err == nil {
			e.v, e.err = parse(data)
		}
	})
	return e.v, e.err
}

// checkBlobSum compares the SHA-256 of blob i's bytes with its index entry
// (FORMAT.md §5.1). The CRC only says the bytes were not damaged after
// writing; the digest is what identifies the decoder, so bytes that do not
// have it are rejected like damaged ones.
func checkBlobSum(i int, b format.Blob, got [32]byte) error {
	if got == b.SHA256 {
		return nil
	}
	return fmt.Errorf("%w: blob %d (%s) at offset %#x: stored SHA-256 %x, computed %x",
		format.ErrChecksum, i, b.Codec, b.Section.Offset, b.SHA256[:8], got[:8])
}

// A ReadCloser is a Reader of a file it opened and must close.
type ReadCloser struct {
	*Reader
	f *os.File
}

// Open opens the .nwc file at path.
func Open(path string, opts *Options) (*ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	r, err := NewReader(f, fi.Size(), opts)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &ReadCloser{Reader: r, f: f}, nil
}

// Close closes the file.
func (rc *ReadCloser) Close() error { return rc.f.Close() }

var _ codec.Env = (*tensorEnv)(nil)
