package spec

import (
	"sync"

	"github.com/klauspost/compress/zstd"
)

var (
	zstdOnce sync.Once
	zstdDec  *zstd.Decoder
)

// decompressIndex returns the msgpack index held by a compressed index
// (FORMAT.md §5, "Stored form"): exactly one Zstandard frame (RFC 8878)
// declaring its content size, which is checked against the index limit
// before decompressing, and decoding to exactly that many bytes. The frame
// structure is walked here to find where the frame ends; decompressing its
// blocks is left to klauspost/compress.
func decompressIndex(stored []byte) ([]byte, error) {
	// Frame header (RFC 8878 §3.1.1.1): magic, descriptor, optional
	// window descriptor, dictionary id and content size.
	if len(stored) < 5 {
		return nil, formatErr("compressed index: truncated frame header")
	}
	fhd := stored[4]
	// RFC 8878 §3.1.1.1.1: a decoder must refuse a frame whose reserved
	// bit is set; the header is invalid before its size means anything.
	if fhd&0x08 != 0 {
		return nil, formatErr("compressed index: reserved bit set in the frame header descriptor")
	}
	fcsFlag := fhd >> 6
	single := fhd&0x20 != 0
	checksum := fhd&0x04 != 0
	dictLen := []int{0, 1, 2, 4}[fhd&3]
	fcsLen := []int{0, 2, 4, 8}[fcsFlag]
	if fcsFlag == 0 && single {
		fcsLen = 1
	}
	p := 5
	if !single {
		p++ // window descriptor
	}
	p += dictLen
	if fcsLen == 0 {
		return nil, formatErr("compressed index does not declare its size")
	}
	if len(stored) < p+fcsLen {
		return nil, formatErr("compressed index: truncated frame header")
	}
	var fcs uint64
	for i := fcsLen - 1; i >= 0; i-- {
		fcs = fcs<<8 | uint64(stored[p+i])
	}
	if fcsLen == 2 {
		fcs += 256
	}
	p += fcsLen
	if fcs > MaxIndexSize {
		return nil, limitErr("compressed index declares %d bytes, limit %d", fcs, MaxIndexSize)
	}
	// The dictionary id sits between the window descriptor and the
	// content size; a nonzero one is refused with the decompression.
	dictAt := 5
	if !single {
		dictAt++
	}
	for _, c := range stored[dictAt : dictAt+dictLen] {
		if c != 0 {
			return nil, formatErr("compressed index uses a dictionary")
		}
	}
	// Blocks (§3.1.1.2): a 3-byte header each (last flag, type, size); a
	// raw block holds size bytes, an RLE block one, a compressed block
	// size bytes.
	for {
		if len(stored)-p < 3 {
			return nil, formatErr("compressed index: truncated block header at byte %d", p)
		}
		h := uint32(stored[p]) | uint32(stored[p+1])<<8 | uint32(stored[p+2])<<16
		p += 3
		n := int(h >> 3)
		switch (h >> 1) & 3 {
		case 1:
			n = 1
		case 3:
			return nil, formatErr("compressed index: reserved block type")
		}
		if len(stored)-p < n {
			return nil, formatErr("compressed index: truncated block at byte %d", p)
		}
		p += n
		if h&1 != 0 {
			break
		}
	}
	if checksum {
		p += 4
	}
	if p != len(stored) {
		return nil, formatErr("compressed index: %d bytes after its frame, or a truncated checksum", len(stored)-p)
	}
	zstdOnce.Do(func() {
		zstdDec, _ = zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecodeAllCapLimit(true))
	})
	out, err := zstdDec.DecodeAll(stored, make([]byte, 0, fcs))
	if err != nil {
		return nil, formatErr("compressed index: %v", err)
	}
	if uint64(len(out)) != fcs {
		return nil, formatErr("compressed index holds %d bytes, declares %d", len(out), fcs)
	}
	return out, nil
}
