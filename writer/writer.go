// Package writer writes .nwc files as a stream: each tensor's sections are
// written as soon as it is encoded, and the index follows at Close. At most
// one tensor's data is held in memory. The format is specified in FORMAT.md;
// this package writes version 1.0.
package writer

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"sort"
	"unicode/utf8"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/format"
)

// Options configure a Writer. The zero value selects the defaults.
type Options struct {
	// AlignLog2 is log2 of the alignment of every section, in
	// [format.MinAlignLog2, format.MaxAlignLog2]; 0 selects 64 bytes
	// (format.DefaultAlignLog2) unless Packed is set.
	AlignLog2 uint8
	// Packed writes sections back to back (alignment 1, AlignLog2
	// ignored). Alignment only helps raw tensors mapped in place; files
	// whose tensors are all decoded save up to one alignment unit less a
	// byte per section.
	Packed bool
	// MaxInlineAux is the largest auxiliary data stored inline in the
	// index rather than as a section (which costs an entry and up to one
	// alignment unit of padding); 0 selects DefaultMaxInlineAux, a
	// negative value stores every aux as a section.
	MaxInlineAux int
	// PlainIndex stores the index as plain msgpack even where zstd would
	// make it shorter (FORMAT.md §5), so that a reader without a zstd
	// decoder, or a msgpack tool, can read the file.
	PlainIndex bool
}

// DefaultMaxInlineAux keeps the scales, tables and levels of small
// matrices in the index, where they cost no padding, while the index of a
// large model stays small.
const DefaultMaxInlineAux = 256

// ErrClosed is returned by calls on a closed Writer.
var ErrClosed = errors.New("writer: closed")

// A Writer writes one .nwc file.
type Writer struct {
	bw         *bufio.Writer
	off        uint64 // bytes written so far
	align      uint8
	inline     int // aux data up to this size goes into the index
	plainIndex bool
	err        error // sticky: the first write error ends the file
	closed     bool

	index format.Index
	names map[string]struct{}
	blobs map[[32]byte]int // sha256 → index in index.Blobs
}

// New returns a Writer that writes to w. The preamble is written
// immediately.
func New(w io.Writer, opts *Options) (*Writer, error) {
	align := uint8(format.DefaultAlignLog2)
	switch {
	case opts != nil && opts.Packed:
		align = 0
	case opts != nil && opts.AlignLog2 != 0:
		align = opts.AlignLog2
	}
	if align < format.MinAlignLog2 || align > format.MaxAlignLog2 {
		return nil, fmt.Errorf("writer: alignment 2^%d outside [2^%d, 2^%d]", align, format.MinAlignLog2, format.MaxAlignLog2)
	}
	inline := DefaultMaxInlineAux
	if opts != nil && opts.MaxInlineAux != 0 {
		inline = opts.MaxInlineAux
	}
	wr := &Writer{
		plainIndex: opts != nil && opts.PlainIndex,
		bw:         bufio.NewWriterSize(w, 1<<20),
		align:      align,
		inline:     inline,
		names:      map[string]struct{}{},
		blobs:      map[[32]byte]int{},
	}
	p := format.Preamble{Major: format.VersionMajor, Minor: format.VersionMinor, AlignLog2: align}.Marshal()
	wr.write(p[:])
	return wr, wr.err
}

func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	n, err := w.bw.Write(b)
	w.off += uint64(n)
	if err != nil {
		w.err = err
	}
}

var zeros [4096]byte

// pad writes zeros up to the next multiple of the alignment.
func (w *Writer) pad() {
	for next := format.AlignUp(w.off, w.align); w.off < next && w.err == nil; {
		w.write(zeros[:min(next-w.off, uint64(len(zeros)))])
	}
}

// section writes b as an aligned section.
func (w *Writer) section(b []byte) format.Section {
	w.pad()
	s := format.Section{Offset: w.off, Length: uint64(len(b)), CRC: format.CRC(b)}
	w.write(b)
	return s
}

func (w *Writer) check() error {
	if w.closed {
		return ErrClosed
	}
	return w.err
}

// SetMetadata sets the file's metadata map (the safetensors __metadata__,
// kept verbatim). A nil map means the source had none.
func (w *Writer) SetMetadata(md map[string]string) error {
	if err := w.check(); err != nil {
		return err
	}
	for k, v := range md {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("writer: metadata %q is not valid UTF-8", k)
		}
	}
	if md == nil {
		w.index.Metadata = nil
		return nil
	}
	w.index.Metadata = make(map[string]string, len(md))
	for k, v := range md {
		w.index.Metadata[k] = v
	}
	return nil
}

// Metadata returns a copy of the metadata map set so far, nil if none.
func (w *Writer) Metadata() map[string]string { return maps.Clone(w.index.Metadata) }

// AddSource records the verbatim header of a source safetensors file, so
// that decoding can reproduce it byte for byte.
func (w *Writer) AddSource(name string, header []byte) error {
	if err := w.check(); err != nil {
		return err
	}
	if name == "" || !utf8.ValidString(name) || len(header) == 0 {
		return fmt.Errorf("writer: source needs a UTF-8 name and a header")
	}
	s := w.section(header)
	w.index.Sources = append(w.index.Sources, format.Source{Name: name, Header: s})
	return w.err
}

// WriteTensor encodes t with the codec registered as codecID and writes it.
func (w *Writer) WriteTensor(t *codec.Tensor, codecID string, opts *codec.EncodeOptions) error {
	if err := w.check(); err != nil {
		return err
	}
	if err := w.checkTensor(t.Name, t.DType, t.Shape); err != nil {
		return err
	}
	c, err := codec.LookupEncoder(codecID)
	if err != nil {
		return err
	}
	enc, err := c.Encode(t, opts)
	if err != nil {
		return fmt.Errorf("writer: tensor %q: %w", t.Name, err)
	}
	return w.WriteEncoded(t.Name, t.DType, t.Shape, codecID, enc)
}

func (w *Writer) checkTensor(name string, dt format.DType, shape []uint64) error {
	if name == "" || !utf8.ValidString(name) || len(name) > format.DefaultMaxNameLen {
		return fmt.Errorf("writer: tensor name %q must be non-empty UTF-8 of at most %d bytes", name, format.DefaultMaxNameLen)
	}
	if _, dup := w.names[name]; dup {
		return fmt.Errorf("writer: duplicate tensor name %q", name)
	}
	if !dt.Valid() {
		return fmt.Errorf("writer: tensor %q: %w", name, format.UnsupportedError("dtype "+string(dt)))
	}
	if len(shape) > format.DefaultMaxRank {
		return fmt.Errorf("writer: tensor %q has rank %d, over %d", name, len(shape), format.DefaultMaxRank)
	}
	return nil
}

// WriteEncoded writes a tensor that was already encoded by codec codecID.
func (w *Writer) WriteEncoded(name string, dt format.DType, shape []uint64, codecID string, enc *codec.Encoded) error {
	if err := w.check(); err != nil {
		return err
	}
	if err := w.checkTensor(name, dt, shape); err != nil {
		return err
	}
	t := format.Tensor{
		Name:   name,
		DType:  dt,
		Shape:  append([]uint64{}, shape...),
		Codec:  codecID,
		Params: enc.Params,
		Blob:   -1,
		View:   enc.View,
	}
	// Check the entry before writing a byte of it, so that bad encoder
	// output returns an error and leaves the file writable.
	for _, g := range enc.Groups {
		if len(g.Data) == 0 {
			return fmt.Errorf("writer: tensor %q: codec %s produced an empty group", name, codecID)
		}
		t.Groups = append(t.Groups, format.Group{End: g.End})
	}
	aux := append([]codec.NamedBytes{}, enc.Aux...)
	sort.Slice(aux, func(i, j int) bool { return aux[i].Name < aux[j].Name })
	for _, a := range aux {
		if len(a.Data) == 0 {
			return fmt.Errorf("writer: tensor %q: empty aux section %q", name, a.Name)
		}
		t.Aux = append(t.Aux, format.NamedSection{Name: a.Name})
	}
	if enc.Blob != nil && len(enc.Blob.Data) == 0 {
		return fmt.Errorf("writer: tensor %q: empty blob", name)
	}
	if enc.Blob != nil && enc.Blob.Ref {
		if _, ok := codec.BuiltinBlob(enc.Blob.Codec, sha256.Sum256(enc.Blob.Data)); !ok {
			return fmt.Errorf("writer: tensor %q: blob reference to a %s blob that is not built in", name, enc.Blob.Codec)
		}
	}
	if err := format.ValidateTensor(&t, len(w.index.Blobs)+1, format.Limits{}); err != nil {
		return fmt.Errorf("writer: %w", err)
	}
	if enc.Blob != nil {
		t.Blob = w.blob(enc.Blob)
	}
	for i, g := range enc.Groups {
		t.Groups[i].Section = w.section(g.Data)
	}
	for i, a := range aux {
		if len(a.Data) <= w.inline {
			t.Aux[i].Inline = append([]byte(nil), a.Data...)
		} else {
			t.Aux[i].Section = w.section(a.Data)
		}
	}
	if w.err != nil {
		return w.err
	}
	w.names[name] = struct{}{}
	w.index.Tensors = append(w.index.Tensors, t)
	return w.err
}

// blob stores b unless an identical blob is already in the file; a
// reference (b.Ref) stores only the SHA-256.
func (w *Writer) blob(b *codec.BlobData) int {
	sum := sha256.Sum256(b.Data)
	if i, ok := w.blobs[sum]; ok && w.index.Blobs[i].Codec == b.Codec {
		return i
	}
	var s *format.Section
	if !b.Ref {
		sec := w.section(b.Data)
		s = &sec
	}
	w.index.Blobs = append(w.index.Blobs, format.Blob{Codec: b.Codec, SHA256: sum, Section: s})
	w.blobs[sum] = len(w.index.Blobs) - 1
	return len(w.index.Blobs) - 1
}

// Size returns the number of bytes written so far; after Close, the size
// of the file.
func (w *Writer) Size() int64 { return int64(w.off) }

// Close writes the index and the trailer and flushes. It does not close
// the underlying writer. A second Close returns ErrClosed.
func (w *Writer) Close() error {
	if w.closed {
		return ErrClosed
	}
	w.closed = true
	if w.err != nil {
		return w.err
	}
	w.pad()
	raw := w.index.Marshal()
	// Readers need accept no more than the limits of FORMAT.md §5.4, so a
	// file over them is refused here rather than written.
	if len(raw) > format.DefaultMaxIndexSize {
		w.err = fmt.Errorf("writer: %w", &format.LimitError{What: "index size", Value: uint64(len(raw)), Limit: format.DefaultMaxIndexSize})
		return w.err
	}
	if _, err := format.ParseIndex(raw, -1, format.Limits{}); err != nil {
		w.err = fmt.Errorf("writer: index rejected by the reader's limits: %w", err)
		return w.err
	}
	idx := raw
	if !w.plainIndex {
		idx = format.CompressIndex(raw)
	}
	tr := format.Trailer{
		IndexOffset: w.off,
		IndexLength: uint64(len(idx)),
		IndexCRC:    format.CRC(idx),
	}
	tr.FileSize = w.off + uint64(len(idx)) + format.TrailerLen
	// The layout is checked once more as a whole, so a bug here can never
	// produce a file our own reader rejects.
	if err := w.index.Validate(format.Layout{FileSize: tr.FileSize, AlignLog2: w.align, IndexOffset: tr.IndexOffset}, format.Limits{}); err != nil {
		w.err = fmt.Errorf("writer: internal error, index invalid: %w", err)
		return w.err
	}
	w.write(idx)
	tb := tr.Marshal()
	w.write(tb[:])
	if w.err == nil {
		w.err = w.bw.Flush()
	}
	return w.err
}
