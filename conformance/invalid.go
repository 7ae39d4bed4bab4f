package conformance

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/neural"
	"github.com/nwcodec/nwc/codec/neural/nwcenc"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
)

// An Invalid is a damaged or malformed file and the error class a reader
// must report for it (format.Class): "format", "checksum", "unsupported"
// or "limit". Deep is set when only decoding the tensors finds the problem.
type Invalid struct {
	Name  string
	Class string
	Deep  bool
	Build func() ([]byte, error)
}

// base is the small valid file every invalid file is made from.
func base() ([]byte, error) {
	return fileSpec{metadata: map[string]string{"k": "v"}, tensors: []tensorSpec{
		{name: "a", dtype: format.F32, shape: []uint64{4, 8}, codec: "raw", seed: 11},
		{name: "b", dtype: format.BF16, shape: []uint64{8, 16}, codec: "lossless", seed: 12},
	}}.build()
}

// Invalids lists the invalid files.
func Invalids() []Invalid {
	return []Invalid{
		{"bad_magic.nwc", "format", false, bytesEdit(func(b []byte) []byte { b[1] = 'X'; return b })},
		{"preamble_crc.nwc", "checksum", false, bytesEdit(func(b []byte) []byte { b[10] ^= 1; return b })},
		{"major_version_2.nwc", "unsupported", false, preamble(func(b []byte) { b[8] = 2 })},
		{"reserved_nonzero.nwc", "format", false, preamble(func(b []byte) { b[20] = 1 })},
		{"alignment_too_large.nwc", "format", false, preamble(func(b []byte) { b[12] = 25 })},
		{"truncated.nwc", "format", false, bytesEdit(func(b []byte) []byte { return b[:len(b)-1] })},
		{"appended.nwc", "format", false, bytesEdit(func(b []byte) []byte { return append(b, 0) })},
		{"trailer_crc.nwc", "checksum", false, bytesEdit(func(b []byte) []byte { b[len(b)-40] ^= 0x80; return b })},
		{"index_crc.nwc", "checksum", false, bytesEdit(func(b []byte) []byte { b[len(b)-41] ^= 1; return b })},
		{"section_crc.nwc", "checksum", false, bytesEdit(func(b []byte) []byte { b[64] ^= 1; return b })},
		{"padding_nonzero.nwc", "format", false, bytesEdit(func(b []byte) []byte { b[40] = 7; return b })},
		{"index_not_msgpack.nwc", "format", false, rawIndex(func([]byte) []byte { return []byte{0xc1, 0x00} })},
		{"index_trailing_bytes.nwc", "format", false, rawIndex(func(ix []byte) []byte { return append(ix, 0xc0) })},
		{"index_no_tensors.nwc", "format", false, rawIndex(func([]byte) []byte { return []byte{0x80} })},
		{"index_zstd_corrupt.nwc", "format", false, rawIndex(func(ix []byte) []byte {
			c := format.CompressIndex(ix)
			c[len(c)/2] ^= 0x55
			return c
		})},
		{"index_zstd_truncated.nwc", "format", false, rawIndex(func(ix []byte) []byte {
			c := format.CompressIndex(ix)
			return c[:len(c)-3]
		})},
		{"index_zstd_huge.nwc", "limit", false, rawIndex(func([]byte) []byte {
			// A single-segment frame declaring 2^40 bytes of content.
			return []byte{0x28, 0xb5, 0x2f, 0xfd, 0xe0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0}
		})},
		{"duplicate_name.nwc", "format", false, index(func(x *format.Index) { x.Tensors[1].Name = x.Tensors[0].Name })},
		{"unknown_dtype.nwc", "unsupported", false, index(func(x *format.Index) { x.Tensors[0].DType = "F4" })},
		{"unknown_codec.nwc", "unsupported", true, index(func(x *format.Index) { x.Tensors[0].Codec = "zstd-magic" })},
		{"rank_over_limit.nwc", "limit", false, index(func(x *format.Index) {
			x.Tensors[0].Shape = append(make([]uint64, 0, 40), x.Tensors[0].Shape...)
			for len(x.Tensors[0].Shape) < format.DefaultMaxRank+1 {
				x.Tensors[0].Shape = append(x.Tensors[0].Shape, 1)
			}
		})},
		{"shape_overflow.nwc", "format", false, index(func(x *format.Index) { x.Tensors[0].Shape = []uint64{1 << 40, 1 << 40} })},
		{"tensor_too_large.nwc", "limit", false, index(func(x *format.Index) {
			x.Tensors[0].Shape = []uint64{1 << 30, 1 << 30}
			x.Tensors[0].View = [2]uint64{1 << 30, 1 << 30}
		})},
		{"view_mismatch.nwc", "format", false, index(func(x *format.Index) { x.Tensors[0].View = [2]uint64{2, 8} })},
		{"groups_short.nwc", "format", false, index(func(x *format.Index) { x.Tensors[0].Groups[0].End-- })},
		{"section_overlap.nwc", "format", false, index(func(x *format.Index) { x.Tensors[1].Groups[0].Offset = x.Tensors[0].Groups[0].Offset })},
		{"section_past_index.nwc", "format", false, index(func(x *format.Index) { x.Tensors[1].Groups[0].Length += 1 << 20 })},
		{"blob_out_of_range.nwc", "format", false, index(func(x *format.Index) { x.Tensors[0].Blob = 3 })},
		{"raw_params.nwc", "format", true, index(func(x *format.Index) { x.Tensors[0].Params = []byte{0x80} })},
		{"lossless_payload_corrupt.nwc", "format", true, section(1, func(b []byte) { b[0] ^= 0xff })},
		// The blob still parses and its CRC matches: only its SHA-256
		// tells that these are not the decoder weights the file names.
		{"blob_sha256_mismatch.nwc", "checksum", false, blobEdit(func(b []byte) { b[len(b)-4] ^= 1 })},
		{"blob_of_other_codec.nwc", "format", true, nwcIndex(func(x *format.Index) { x.Blobs[0].Codec = "ecsq" })},
		{"raw_with_blob.nwc", "format", true, index(func(x *format.Index) {
			def, _ := neural.Default()
			x.Blobs = []format.Blob{{Codec: "nwc", SHA256: def.BlobSHA256()}}
			x.Tensors[0].Blob = 0
		})},
		{"raw_with_aux.nwc", "format", true, index(func(x *format.Index) {
			x.Tensors[0].Aux = []format.NamedSection{{Name: "scales", Inline: []byte{1}}}
		})},

		// Several faults: the first check of FORMAT.md §6 that fails
		// decides the class.
		{"multi_major_2_reserved.nwc", "unsupported", false, preamble(func(b []byte) { b[8] = 2; b[20] = 1 })},
		{"multi_reserved_trailer_crc.nwc", "format", false, bytesEdit(func(b []byte) []byte {
			b[20] = 1
			binary.LittleEndian.PutUint32(b[28:], format.CRC(b[:28]))
			b[len(b)-40] ^= 0x80
			return b
		})},
		{"multi_index_crc_zstd_huge.nwc", "checksum", false, then(rawIndex(func([]byte) []byte {
			return []byte{0x28, 0xb5, 0x2f, 0xfd, 0xe0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0}
		}), func(b []byte) []byte { b[len(b)-41] ^= 1; return b })},
		{"multi_dtype_then_rank_limit.nwc", "limit", false, index(func(x *format.Index) {
			x.Tensors[0].DType = "F4"
			for len(x.Tensors[1].Shape) <= format.DefaultMaxRank {
				x.Tensors[1].Shape = append(x.Tensors[1].Shape, 1)
			}
		})},
		{"multi_dtype_then_view.nwc", "unsupported", false, index(func(x *format.Index) {
			x.Tensors[0].DType = "F4"
			x.Tensors[1].View = [2]uint64{2, 8}
		})},
		{"multi_view_then_dtype.nwc", "format", false, index(func(x *format.Index) {
			x.Tensors[0].View = [2]uint64{2, 8}
			x.Tensors[1].DType = "F4"
		})},
		{"multi_dtype_section_overlap.nwc", "unsupported", false, index(func(x *format.Index) {
			x.Tensors[1].DType = "F4"
			x.Tensors[1].Groups[0].Offset = x.Tensors[0].Groups[0].Offset
		})},
		{"multi_padding_then_section_crc.nwc", "format", false, bytesEdit(func(b []byte) []byte { b[40] = 7; b[64] ^= 1; return b })},
		{"multi_section_crc_then_padding.nwc", "checksum", false, sectionThenPadding},
		// Counts and lengths meet their limits at the header, before the
		// bytes they announce turn out to be missing.
		{"multi_tensor_count_limit_truncated.nwc", "limit", false, rawIndex(func([]byte) []byte {
			w := format.NewMsgWriter()
			w.MapLen(1)
			w.String("tensors")
			w.ArrayLen(format.DefaultMaxTensors + 1)
			return w.Bytes()
		})},
		{"multi_name_limit_truncated.nwc", "limit", false, rawIndex(func([]byte) []byte {
			w := format.NewMsgWriter()
			w.MapLen(1)
			w.String("tensors")
			w.ArrayLen(1)
			w.MapLen(6)
			w.String("name")
			w.Raw([]byte{0xda, 0x13, 0x88}) // str 16 of 5000 bytes
			w.Raw(make([]byte, 40))
			return w.Bytes()
		})},
	}
}

// then applies edit to the bytes build returns.
func then(build func() ([]byte, error), edit func([]byte) []byte) func() ([]byte, error) {
	return func() ([]byte, error) {
		b, err := build()
		if err != nil {
			return nil, err
		}
		return edit(b), nil
	}
}

// sectionThenPadding damages the first section followed by padding and
// makes that padding nonzero.
func sectionThenPadding() ([]byte, error) {
	b, err := base()
	if err != nil {
		return nil, err
	}
	r, err := reader.NewReader(bytes.NewReader(b), int64(len(b)), nil)
	if err != nil {
		return nil, err
	}
	for _, s := range r.Index().Sections() {
		if end := s.Section.End(); format.AlignUp(end, format.DefaultAlignLog2) != end {
			b[s.Offset] ^= 1
			b[end] = 7
			return b, nil
		}
	}
	return nil, fmt.Errorf("conformance: no section of the base file is followed by padding")
}

// nwcFile is a small packed file of one nwc tensor coded with the learned
// transform, so that it embeds the default codec's blob.
func nwcFile() ([]byte, *format.Index, error) {
	def, err := nwcenc.Default()
	if err != nil {
		return nil, nil, err
	}
	b, err := fileSpec{packed: true, tensors: []tensorSpec{{name: "nwc_learned", dtype: format.F32, shape: []uint64{32, 16},
		codec: "nwc", seed: 41, weights: true, opts: codec.EncodeOptions{Step: 0.6}, encoder: def.Learned()}}}.build()
	if err != nil {
		return nil, nil, err
	}
	r, err := reader.NewReader(bytes.NewReader(b), int64(len(b)), nil)
	if err != nil {
		return nil, nil, err
	}
	x := r.Index()
	if len(x.Blobs) != 1 || x.Blobs[0].Section == nil {
		return nil, nil, fmt.Errorf("conformance: the nwc file has no embedded blob")
	}
	return b, x, nil
}

// nwcIndex edits the index of nwcFile.
func nwcIndex(edit func(*format.Index)) func() ([]byte, error) {
	return func() ([]byte, error) {
		b, x, err := nwcFile()
		if err != nil {
			return nil, err
		}
		edit(x)
		ix := x.Marshal()
		return rebuildIndex(b, func([]byte) []byte { return ix })
	}
}

// blobEdit edits the bytes of the embedded blob of nwcFile and fixes its
// CRC, leaving the recorded SHA-256 as it was.
func blobEdit(edit func([]byte)) func() ([]byte, error) {
	return func() ([]byte, error) {
		b, x, err := nwcFile()
		if err != nil {
			return nil, err
		}
		s := x.Blobs[0].Section
		edit(b[s.Offset:s.End()])
		s.CRC = format.CRC(b[s.Offset:s.End()])
		ix := x.Marshal()
		return rebuildIndex(b, func([]byte) []byte { return ix })
	}
}

// FutureMinor is a valid file of a newer minor version with an index
// field this version does not know: readers must skip it.
func FutureMinor() ([]byte, error) {
	b, err := preamble(func(b []byte) { b[10] = 7 })()
	if err != nil {
		return nil, err
	}
	return rebuildIndex(b, func(ix []byte) []byte {
		// The writer's top-level map is a fixmap of at most 4 keys: add
		// one entry.
		ix = append([]byte{ix[0] + 1}, ix[1:]...)
		w := format.NewMsgWriter()
		w.String("x-future")
		w.MapLen(1)
		w.String("nested")
		w.ArrayLen(2)
		w.Uint(1)
		w.Bin([]byte("two"))
		return append(ix, w.Bytes()...)
	})
}

func bytesEdit(edit func([]byte) []byte) func() ([]byte, error) {
	return func() ([]byte, error) {
		b, err := base()
		if err != nil {
			return nil, err
		}
		return edit(b), nil
	}
}

// preamble edits the preamble and recomputes its checksum, so the edit
// itself is what a reader must catch.
func preamble(edit func([]byte)) func() ([]byte, error) {
	return bytesEdit(func(b []byte) []byte {
		edit(b)
		binary.LittleEndian.PutUint32(b[28:], format.CRC(b[:28]))
		return b
	})
}

// rawIndex replaces the index bytes, with valid checksums.
func rawIndex(edit func([]byte) []byte) func() ([]byte, error) {
	return func() ([]byte, error) {
		b, err := base()
		if err != nil {
			return nil, err
		}
		return rebuildIndex(b, edit)
	}
}

// index edits the parsed index and re-encodes it, with valid checksums.
func index(edit func(*format.Index)) func() ([]byte, error) {
	return rawIndex(func(ix []byte) []byte {
		x, err := format.ParseIndex(ix, 0, format.Limits{})
		if err != nil {
			panic(err) // the base file is ours and valid
		}
		edit(x)
		return x.Marshal()
	})
}

// section edits the payload of the i-th section in file order and fixes its
// CRC, so that only the codec can notice.
func section(i int, edit func([]byte)) func() ([]byte, error) {
	return func() ([]byte, error) {
		b, err := base()
		if err != nil {
			return nil, err
		}
		r, err := reader.NewReader(bytes.NewReader(b), int64(len(b)), nil)
		if err != nil {
			return nil, err
		}
		var groups []*format.Group
		x := r.Index()
		for ti := range x.Tensors {
			for gi := range x.Tensors[ti].Groups {
				groups = append(groups, &x.Tensors[ti].Groups[gi])
			}
		}
		if i >= len(groups) {
			return nil, fmt.Errorf("conformance: no group %d", i)
		}
		g := groups[i]
		edit(b[g.Offset:g.Section.End()])
		g.CRC = format.CRC(b[g.Offset:g.Section.End()])
		ix := x.Marshal()
		return rebuildIndex(b, func([]byte) []byte { return ix })
	}
}

// rebuildIndex replaces the index of a valid file and rewrites the trailer.
// edit sees the msgpack index (decompressed if it was stored compressed);
// its result is stored as it is.
func rebuildIndex(b []byte, edit func([]byte) []byte) ([]byte, error) {
	tb := b[len(b)-format.TrailerLen:]
	off := binary.LittleEndian.Uint64(tb[0:])
	n := binary.LittleEndian.Uint64(tb[8:])
	raw, err := format.DecompressIndex(b[off:off+n], int64(off), format.DefaultMaxIndexSize)
	if err != nil {
		return nil, err
	}
	ix := edit(append([]byte(nil), raw...))
	out := append(append([]byte(nil), b[:off]...), ix...)
	tr := format.Trailer{
		IndexOffset: off,
		IndexLength: uint64(len(ix)),
		FileSize:    uint64(len(out) + format.TrailerLen),
		IndexCRC:    format.CRC(ix),
	}.Marshal()
	return append(out, tr[:]...), nil
}
