package format

import (
	"bytes"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// zstdMagic starts a Zstandard frame (RFC 8878). A msgpack index starts
// with a map header instead, so the two are told apart by the first byte.
var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// The index repeats its keys for every tensor, so zstd shrinks it about
// twofold; on small models the index is a noticeable part of the file.
var (
	indexEncoderOnce sync.Once
	indexEncoder     *zstd.Encoder
	indexDecoderOnce sync.Once
	indexDecoder     *zstd.Decoder
)

// CompressIndex returns the stored form of a marshaled index: a single
// zstd frame declaring its content size when that is shorter, else the
// msgpack bytes themselves. The result is deterministic.
func CompressIndex(idx []byte) []byte {
	indexEncoderOnce.Do(func() {
		// Single-threaded and at a fixed level, so the bytes depend on
		// the input alone.
		indexEncoder, _ = zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression),
			zstd.WithEncoderConcurrency(1), zstd.WithEncoderCRC(false), zstd.WithSingleSegment(true))
	})
	c := indexEncoder.EncodeAll(idx, nil)
	if len(c) >= len(idx) {
		return idx
	}
	return c
}

// IndexCompressed reports whether a stored index is a zstd frame.
func IndexCompressed(stored []byte) bool { return bytes.HasPrefix(stored, zstdMagic) }

// DecompressIndex returns the msgpack index of its stored form (see
// CompressIndex), decompressing at most limit bytes. A compressed index
// must be one frame that declares its content size, and decode to exactly
// that many bytes.
func DecompressIndex(stored []byte, off int64, limit int64) ([]byte, error) {
	if !IndexCompressed(stored) {
		return stored, nil
	}
	var h zstd.Header
	if err := h.Decode(stored); err != nil {
		return nil, Errorf(off, "compressed index: %v", err)
	}
	if !h.HasFCS {
		return nil, Errorf(off, "compressed index does not declare its size")
	}
	if h.FrameContentSize > uint64(limit) {
		return nil, &LimitError{What: "index size", Value: h.FrameContentSize, Limit: uint64(limit)}
	}
	// DecodeAll would also decode (or skip) frames after the first one.
	if n, ok := frameLen(stored, h); !ok || n != len(stored) {
		return nil, Errorf(off, "compressed index is not exactly one zstd frame")
	}
	indexDecoderOnce.Do(func() {
		// With the cap limit DecodeAll never grows its output past the
		// capacity given, the first frame's declared size, whatever
		// further frames claim.
		indexDecoder, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecodeAllCapLimit(true))
	})
	out, err := indexDecoder.DecodeAll(stored, make([]byte, 0, h.FrameContentSize))
	if err != nil {
		return nil, Errorf(off, "compressed index: %v", err)
	}
	if uint64(len(out)) != h.FrameContentSize {
		return nil, Errorf(off, "compressed index holds %d bytes, declares %d", len(out), h.FrameContentSize)
	}
	return out, nil
}

// frameLen returns the length of the zstd frame at the start of b whose
// header is h, walking its block headers (RFC 8878 §3.1.1.2), or false if
// b ends first.
func frameLen(b []byte, h zstd.Header) (int, bool) {
	p := h.HeaderSize
	for {
		if len(b)-p < 3 {
			return 0, false
		}
		bh := uint32(b[p]) | uint32(b[p+1])<<8 | uint32(b[p+2])<<16
		p += 3
		n := int(bh >> 3)
		if bh>>1&3 == 1 { // an RLE block stores one byte
			n = 1
		}
		if len(b)-p < n {
			return 0, false
		}
		p += n
		if bh&1 != 0 {
			break
		}
	}
	if h.HasCheckSum {
		p += 4
	}
	return p, p <= len(b)
}
