package reader

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
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
	// Mmap asks Open to map the file into memory, so that raw tensors are
	// handed out without a copy (Tensor.RawBytes) and reads cost no system
	// call. Where mapping is not available (not a Unix system, a file too
	// large for the address space) Open reads through the file instead.
	// NewReader ignores it.
	Mmap bool
}

// A Reader gives access to the tensors of one .nwc file.
type Reader struct {
	r        io.ReaderAt
	mapped   *mapping // nil unless the file is mapped
	size     int64
	preamble format.Preamble
	trailer  format.Trailer
	index    *format.Index
	opts     Options
	tensors  []*Tensor
	byName   map[string]*Tensor

	blobMu sync.Mutex
	blobs  map[int]*blobEntry

	set *partSet // the parts of a sharded file (multi.go); nil for one file
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
	if err := rd.readSectionInto(b, s, what); err != nil {
		return nil, err
	}
	return b, nil
}

// readSectionInto reads a section into b, of its length, and checks its
// CRC32C.
func (rd *Reader) readSectionInto(b []byte, s format.Section, what string) error {
	if err := rd.readAt(b, int64(s.Offset)); err != nil {
		return err
	}
	if got := format.CRC(b); got != s.CRC {
		return &format.ChecksumError{What: what, Off: int64(s.Offset), Want: s.CRC, Got: got}
	}
	return nil
}

// Version returns the file's major and minor format version.
func (rd *Reader) Version() (major, minor int) {
	return int(rd.preamble.Major), int(rd.preamble.Minor)
}

// Alignment returns the section alignment in bytes.
func (rd *Reader) Alignment() int { return 1 << rd.preamble.AlignLog2 }

// Size returns the file size.
func (rd *Reader) Size() int64 { return rd.size }

// Index returns a copy of the parsed index; changing it changes nothing in
// the Reader. It copies every entry: use Tensors, Tensor and Metadata
// for single lookups.
func (rd *Reader) Index() *format.Index { return rd.index.Clone() }

// Metadata returns a copy of the file's metadata map, nil if it has none.
func (rd *Reader) Metadata() map[string]string { return maps.Clone(rd.index.Metadata) }

// Tensors returns the tensors in file order, in a new slice.
func (rd *Reader) Tensors() []*Tensor { return append([]*Tensor(nil), rd.tensors...) }

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

// Open opens the .nwc file at path, or the sharded .nwc whose index file
// (model.nwc.index.json) is at path or in the directory path (a directory
// holding a single .nwc file and no index opens that file): see OpenSet.
// With opts.Mmap the files are mapped into memory until Close.
func Open(path string, opts *Options) (*ReadCloser, error) {
	rc, file, isSet, err := openSet(path, opts)
	if isSet {
		return rc, err
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	var ra io.ReaderAt = f
	var m *mapping
	if opts != nil && opts.Mmap {
		// A file that cannot be mapped is still read, through f.
		if m, err = mmapFile(f, fi.Size()); err == nil {
			ra = m
		}
	}
	r, err := NewReader(ra, fi.Size(), opts)
	if err != nil {
		if m != nil {
			m.close()
		}
		f.Close()
		return nil, err
	}
	r.mapped = m
	return &ReadCloser{Reader: r, f: f}, nil
}

// Mapped reports whether the file is mapped into memory (see
// Options.Mmap).
func (rd *Reader) Mapped() bool {
	if rd.set != nil {
		return rd.set.mapped()
	}
	return rd.mapped != nil
}

// Close unmaps and closes the file. Slices returned by Tensor.RawBytes
// that refer to the mapping must not be used after Close.
func (rc *ReadCloser) Close() error {
	if rc.set != nil {
		return rc.set.close()
	}
	var err error
	if rc.mapped != nil {
		err = rc.mapped.close()
	}
	return errors.Join(err, rc.f.Close())
}

var _ codec.Env = (*tensorEnv)(nil)
