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
