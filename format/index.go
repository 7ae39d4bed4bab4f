package format

import (
	"sort"
)

// A Section locates a checksummed run of bytes in the file.
type Section struct {
	Offset uint64 // from the start of the file; a multiple of the alignment
	Length uint64 // at least 1
	CRC    uint32 // CRC32C (Castagnoli) of the bytes
}

// End returns the offset one past the section's last byte.
func (s Section) End() uint64 { return s.Offset + s.Length }

// A Group is one independently decodable chunk group of a tensor: the
// elements [previous group's End, End) of the tensor in row-major order of
// its 2-D view, stored in Section.
type Group struct {
	End uint64
	Section
}

// A NamedSection is a tensor's auxiliary data (per-column scales,
// importance levels, ...) whose meaning the tensor's codec defines. Small
// auxiliary data is stored inline in the index (Inline non-nil, Section
// zero), where it costs no section entry and no alignment padding; larger
// data is a section.
type NamedSection struct {
	Name   string
	Inline []byte
	Section
}

// Len returns the length of the data, inline or not.
func (a NamedSection) Len() uint64 {
	if a.Inline != nil {
		return uint64(len(a.Inline))
	}
	return a.Length
}

// A Blob is codec data shared by any number of tensors: a decoder's
// weights and its integer entropy tables.
type Blob struct {
	Codec  string   // the codec that reads it
	SHA256 [32]byte // of the blob's bytes
	// Section holds the bytes. It is nil for a reference to a blob built
	// into the implementation, identified by SHA256 alone.
	Section *Section
}

// A Source records where the tensors came from: the verbatim header of a
// safetensors file, so that decoding can reproduce the file byte for byte.
type Source struct {
	Name   string // base name of the original file
	Header Section
}

// A Tensor is one index entry.
type Tensor struct {
	Name   string
	DType  DType
	Shape  []uint64
	Codec  string
	Params []byte    // codec parameters: one msgpack value, or nil
	Blob   int       // index into Index.Blobs, or -1
	View   [2]uint64 // rows, cols of the 2-D view the codec works on
	Groups []Group
	Aux    []NamedSection // sorted by name, names unique
}

// NumElements returns the product of the shape (1 for a 0-d tensor). The
// caller must have validated the shape (see Index.Validate) so it cannot
// overflow.
func (t *Tensor) NumElements() uint64 {
	n := uint64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// StoredBytes returns the bytes of the tensor's own sections (groups and
// auxiliary data), not counting shared blobs.
func (t *Tensor) StoredBytes() uint64 {
	var n uint64
	for _, g := range t.Groups {
		n += g.Length
	}
	for _, a := range t.Aux {
		n += a.Len()
	}
	return n
}

// AuxEntry returns the auxiliary data called name.
func (t *Tensor) AuxEntry(name string) (NamedSection, bool) {
	i := sort.Search(len(t.Aux), func(i int) bool { return t.Aux[i].Name >= name })
	if i < len(t.Aux) && t.Aux[i].Name == name {
		return t.Aux[i], true
	}
	return NamedSection{}, false
}

// GroupStart returns the first element of group i.
func (t *Tensor) GroupStart(i int) uint64 {
	if i == 0 {
		return 0
	}
	return t.Groups[i-1].End
}

// An Index is the table of contents of a file.
type Index struct {
	// Metadata is the safetensors __metadata__ map, verbatim; nil when the
	// source had none (an empty map is kept as an empty map).
	Metadata map[string]string
	Sources  []Source
	Blobs    []Blob
	Tensors  []Tensor
}

// Index keys, in the order the writer emits them.
const (
	keyMetadata = "metadata"
	keySources  = "sources"
	keyBlobs    = "blobs"
	keyTensors  = "tensors"

	keyName   = "name"
	keyHeader = "header"

	keyCodec   = "codec"
	keySHA256  = "sha256"
	keySection = "section"

	keyDType  = "dtype"
	keyShape  = "shape"
	keyParams = "params"
	keyBlob   = "blob"
	keyView   = "view"
	keyGroups = "groups"
	keyAux    = "aux"
)

// Marshal encodes the index in its canonical msgpack form.
func (x *Index) Marshal() []byte {
	w := NewMsgWriter()
	n := 1
	if x.Metadata != nil {
		n++
	}
	if len(x.Sources) > 0 {
		n++
	}
	if len(x.Blobs) > 0 {
		n++
	}
	w.MapLen(n)
	if x.Metadata != nil {
		w.String(keyMetadata)
		keys := make([]string, 0, len(x.Metadata))
		for k := range x.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		w.MapLen(len(keys))
		for _, k := range keys {
			w.String(k)
			w.String(x.Metadata[k])
		}
	}
	if len(x.Sources) > 0 {
		w.String(keySources)
		w.ArrayLen(len(x.Sources))
		for _, s := range x.Sources {
			w.MapLen(2)
			w.String(keyName)
			w.String(s.Name)
			w.String(keyHeader)
			writeSection(w, s.Header)
		}
	}
	if len(x.Blobs) > 0 {
		w.String(keyBlobs)
		w.ArrayLen(len(x.Blobs))
		for _, b := range x.Blobs {
			n := 2
			if b.Section != nil {
				n++
			}
			w.MapLen(n)
			w.String(keyCodec)
			w.String(b.Codec)
			w.String(keySHA256)
			w.Bin(b.SHA256[:])
			if b.Section != nil {
				w.String(keySection)
				writeSection(w, *b.Section)
			}
		}
	}
	w.String(keyTensors)
	w.ArrayLen(len(x.Tensors))
	for i := range x.Tensors {
		writeTensor(w, &x.Tensors[i])
	}
	return w.Bytes()
}

func writeSection(w *MsgWriter, s Section) {
	w.ArrayLen(3)
	w.Uint(s.Offset)
	w.Uint(s.Length)
	w.Uint(uint64(s.CRC))
}

func writeTensor(w *MsgWriter, t *Tensor) {
	n := 6
	if t.Params != nil {
		n++
	}
	if t.Blob >= 0 {
		n++
	}
	if len(t.Aux) > 0 {
		n++
	}
	w.MapLen(n)
	w.String(keyName)
	w.String(t.Name)
	w.String(keyDType)
	w.String(string(t.DType))
	w.String(keyShape)
	w.ArrayLen(len(t.Shape))
	for _, d := range t.Shape {
		w.Uint(d)
	}
	w.String(keyCodec)
	w.String(t.Codec)
	if t.Params != nil {
		w.String(keyParams)
		w.Raw(t.Params)
	}
	if t.Blob >= 0 {
		w.String(keyBlob)
		w.Uint(uint64(t.Blob))
	}
	w.String(keyView)
	w.ArrayLen(2)
	w.Uint(t.View[0])
	w.Uint(t.View[1])
	w.String(keyGroups)
	w.ArrayLen(len(t.Groups))
	for _, g := range t.Groups {
		w.ArrayLen(4)
		w.Uint(g.End)
		w.Uint(g.Offset)
		w.Uint(g.Length)
		w.Uint(uint64(g.CRC))
	}
	if len(t.Aux) > 0 {
		w.String(keyAux)
		w.MapLen(len(t.Aux))
		for _, a := range t.Aux {
			w.String(a.Name)
			if a.Inline != nil {
				w.Bin(a.Inline)
			} else {
				writeSection(w, a.Section)
			}
		}
	}
}

// Clone returns a deep copy of t: changing the copy never changes t.
func (t *Tensor) Clone() Tensor {
	c := *t
	c.Shape = append([]uint64(nil), t.Shape...)
	c.Params = cloneBytes(t.Params)
	c.Groups = append([]Group(nil), t.Groups...)
	if t.Aux != nil {
		c.Aux = make([]NamedSection, len(t.Aux))
		for i, a := range t.Aux {
			a.Inline = cloneBytes(a.Inline)
			c.Aux[i] = a
		}
	}
	return c
}

// Clone returns a deep copy of x: changing the copy never changes x.
func (x *Index) Clone() *Index {
	c := &Index{Sources: append([]Source(nil), x.Sources...)}
	if x.Metadata != nil {
		c.Metadata = make(map[string]string, len(x.Metadata))
		for k, v := range x.Metadata {
			c.Metadata[k] = v
		}
	}
	if x.Blobs != nil {
		c.Blobs = make([]Blob, len(x.Blobs))
		for i, b := range x.Blobs {
			if b.Section != nil {
				s := *b.Section
				b.Section = &s
			}
			c.Blobs[i] = b
		}
	}
	if x.Tensors != nil {
		c.Tensors = make([]Tensor, len(x.Tensors))
		for i := range x.Tensors {
			c.Tensors[i] = x.Tensors[i].Clone()
		}
	}
	return c
}

// cloneBytes copies b, keeping nil nil and empty empty (the index tells
// an absent value from an empty one).
func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte{}, b...)
}
