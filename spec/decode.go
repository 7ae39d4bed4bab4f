package spec

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// A File is a decoded .nwc file.
type File struct {
	Major, Minor int
	AlignLog2    int
	// Metadata is the index's metadata map, nil when the file has none.
	Metadata map[string]string
	Sources  []Source
	Tensors  []Tensor
}

// A Source is one verbatim safetensors header (FORMAT.md §5.1).
type Source struct {
	Name   string
	Header []byte
}

// A Tensor is one decoded tensor.
type Tensor struct {
	Name  string
	DType string // safetensors spelling
	Shape []uint64
	Codec string
	// Data holds the elements in the original dtype, little-endian, in
	// the row-major order of Shape.
	Data []byte
	// Float32 holds, for the lossy codecs, the fp32 value of every element
	// before the conversion to DType (§7.3.8), in storage order; nil for
	// raw and lossless.
	Float32 []float32
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func crc(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

const (
	preambleLen = 32
	trailerLen  = 40
	magic       = "\x89NWC\r\n\x1a\n"
	trailerMag  = "NWCINDEX"
)

// Decode checks every rule of FORMAT.md for file and decodes every tensor.
// builtin maps the SHA-256 of each nwc codec blob built into the caller to
// its bytes (§5.1, §7.7.2); a blob entry without a section is resolved
// there, or its tensors are unsupported.
//
// The checks run in the order of FORMAT.md §6, and the first that fails
// is returned: an error wrapping ErrFormat, ErrChecksum, ErrUnsupported or
// ErrLimit, which [Class] names.
func Decode(file []byte, builtin map[[32]byte][]byte) (*File, error) {
	f, x, err := decodeContainer(file)
	if err != nil {
		return nil, err
	}
	// Step 9: the sections in file order, each after the padding before
	// it; the packing rule has put them inside the file.
	secs := x.sections()
	sortSections(secs)
	prev := uint64(preambleLen)
	for _, s := range secs {
		if err := checkZero(file, prev, s.off); err != nil {
			return nil, err
		}
		if got := crc(file[s.off : s.off+s.length]); got != s.crc {
			return nil, fmt.Errorf("%w: %s at offset %d: crc32c %08x, stored %08x", ErrChecksum, s.what, s.off, got, s.crc)
		}
		for i, b := range x.blobs {
			if b.sec != nil && b.sec.off == s.off && sha256.Sum256(file[s.off:s.off+s.length]) != b.sum {
				return nil, fmt.Errorf("%w: blob %d: SHA-256 does not match its bytes", ErrChecksum, i)
			}
		}
		prev = s.off + s.length
	}
	indexOff := binary.LittleEndian.Uint64(file[len(file)-trailerLen:])
	if err := checkZero(file, prev, indexOff); err != nil {
		return nil, err
	}
	for _, s := range x.sources {
		f.Sources = append(f.Sources, Source{Name: s.name, Header: bytes.Clone(file[s.header.off : s.header.off+s.header.length])})
	}
	// Step 10: the tensors in index order.
	env := &fileEnv{file: file, x: x, builtin: builtin}
	for i := range x.tensors {
		e := &x.tensors[i]
		data, f32, err := decodeTensor(e, env)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", e.name, err)
		}
		f.Tensors = append(f.Tensors, Tensor{Name: e.name, DType: e.dtype, Shape: e.shape, Codec: e.codec, Data: data, Float32: f32})
	}
	return f, nil
}

// Class names the class of an error of [Decode]: "checksum",
// "unsupported", "limit" or "format"; "" for nil and "unclassified" for
// an error that is none of them.
func Class(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrChecksum):
		return "checksum"
	case errors.Is(err, ErrUnsupported):
		return "unsupported"
	case errors.Is(err, ErrLimit):
		return "limit"
	case errors.Is(err, ErrFormat):
		return "format"
	}
	return "unclassified"
}

// decodeContainer checks the preamble (§2), trailer (§3), index (§5) and
// packing rule (§1).
func decodeContainer(file []byte) (*File, *index, error) {
	size := uint64(len(file))
	if size < preambleLen+trailerLen {
		return nil, nil, formatErr("file of %d bytes is shorter than a preamble and a trailer", size)
	}
	p := file[:preambleLen]
	if string(p[:8]) != magic {
		return nil, nil, formatErr("bad magic")
	}
	if got, want := crc(p[:28]), binary.LittleEndian.Uint32(p[28:]); got != want {
		return nil, nil, fmt.Errorf("%w: preamble crc32c %08x, stored %08x", ErrChecksum, got, want)
	}
	f := &File{Major: int(binary.LittleEndian.Uint16(p[8:])), Minor: int(binary.LittleEndian.Uint16(p[10:])), AlignLog2: int(p[12])}
	if f.Major != 1 {
		return nil, nil, fmt.Errorf("%w: major version %d", ErrUnsupported, f.Major)
	}
	if f.AlignLog2 > 24 {
		return nil, nil, formatErr("align_log2 %d above 24", f.AlignLog2)
	}
	for i := 13; i < 28; i++ {
		if p[i] != 0 {
			return nil, nil, formatErr("reserved preamble byte %d is %#02x", i, p[i])
		}
	}

	toff := size - trailerLen
	t := file[toff:]
	if string(t[32:]) != trailerMag {
		return nil, nil, formatErr("bad trailer magic")
	}
	if got, want := crc(t[:28]), binary.LittleEndian.Uint32(t[28:]); got != want {
		return nil, nil, fmt.Errorf("%w: trailer crc32c %08x, stored %08x", ErrChecksum, got, want)
	}
	ioff := binary.LittleEndian.Uint64(t[0:])
	ilen := binary.LittleEndian.Uint64(t[8:])
	fsize := binary.LittleEndian.Uint64(t[16:])
	icrc := binary.LittleEndian.Uint32(t[24:])
	if fsize != size {
		return nil, nil, formatErr("trailer records %d bytes, the file has %d", fsize, size)
	}
	// index_offset + index_length = file_size − 40, without overflow, and
	// the index after the preamble.
	if ioff < preambleLen || ioff > toff || ilen != toff-ioff {
		return nil, nil, formatErr("index [%d, +%d) does not end at the trailer (%d)", ioff, ilen, toff)
	}
	if ilen > MaxIndexSize {
		return nil, nil, limitErr("index of %d bytes, limit %d", ilen, MaxIndexSize)
	}
	stored := file[ioff:toff]
	if got := crc(stored); got != icrc {
		return nil, nil, fmt.Errorf("%w: index crc32c %08x, stored %08x", ErrChecksum, got, icrc)
	}
	raw := stored
	if bytes.HasPrefix(stored, []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		var err error
		if raw, err = decompressIndex(stored); err != nil {
			return nil, nil, err
		}
	}
	x, err := parseIndex(raw)
	if err != nil {
		return nil, nil, err
	}
	if err := x.validate(uint8(f.AlignLog2), ioff); err != nil {
		return nil, nil, err
	}
	f.Metadata = x.metadata
	return f, x, nil
}

func sortSections(secs []section) {
	// Insertion sort keeps equal offsets in index order, as the packing
	// check saw them; offsets are distinct in a valid file anyway.
	for i := 1; i < len(secs); i++ {
		for j := i; j > 0 && secs[j].off < secs[j-1].off; j-- {
			secs[j], secs[j-1] = secs[j-1], secs[j]
		}
	}
}

// checkZero checks that the padding [from, to) is zero.
func checkZero(file []byte, from, to uint64) error {
	for o := from; o < to; o++ {
		if file[o] != 0 {
			return formatErr("padding byte at offset %d is %#02x", o, file[o])
		}
	}
	return nil
}

// fileEnv gives codecs the bytes of their tensor's aux sections and blob.
type fileEnv struct {
	file    []byte
	x       *index
	builtin map[[32]byte][]byte
}

// section returns a section's bytes after checking its CRC.
func (env *fileEnv) section(s section) ([]byte, error) {
	b := env.file[s.off : s.off+s.length]
	if got := crc(b); got != s.crc {
		return nil, fmt.Errorf("%w: %s: crc32c %08x, stored %08x", ErrChecksum, s.what, got, s.crc)
	}
	return b, nil
}

// aux returns the aux data called name (§5.2), inline or from its section.
func (env *fileEnv) aux(t *tensorEntry, name string) ([]byte, bool, error) {
	for _, a := range t.aux {
		if a.name == name {
			if a.inline != nil {
				return a.inline, true, nil
			}
			b, err := env.section(a.sec)
			return b, true, err
		}
	}
	return nil, false, nil
}

// blob returns the bytes of a tensor's blob read by codec id: embedded,
// checked against its SHA-256, or built in.
func (env *fileEnv) blob(t *tensorEntry, id string) ([]byte, error) {
	if t.blob < 0 {
		return nil, formatErr("codec %s needs a blob", id)
	}
	b := env.x.blobs[t.blob]
	if b.codec != id {
		return nil, formatErr("codec %s given blob %d of codec %s", id, t.blob, b.codec)
	}
	if b.sec == nil {
		data, ok := env.builtin[b.sum]
		if !ok {
			return nil, fmt.Errorf("%w: built-in %s blob %x", ErrUnsupported, b.codec, b.sum[:8])
		}
		return data, nil
	}
	data, err := env.section(*b.sec)
	if err != nil {
		return nil, err
	}
	if sha256.Sum256(data) != b.sum {
		return nil, fmt.Errorf("%w: blob %d: SHA-256 does not match its bytes", ErrChecksum, t.blob)
	}
	return data, nil
}
