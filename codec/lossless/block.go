package lossless

import (
	"errors"
	"fmt"
	"math/bits"
	"sync"

	"github.com/klauspost/compress/fse"
	"github.com/klauspost/compress/huff0"
	"github.com/klauspost/compress/zstd"
)

// A method says how one stream block is coded. The values are part of the
// format.
type method uint8

const (
	methodStored   method = 0 // the block's bytes verbatim
	methodHuff0    method = 1 // huff0 4X stream with its own table
	methodFSE      method = 2 // fse block with its own table
	methodZstd     method = 3 // one zstd frame
	methodConstant method = 4 // a single byte repeated over the block
	numMethods            = 5
)

// zstdLevel is fixed because the encoder's choices, and so the output bytes,
// depend on it.
const zstdLevel = zstd.SpeedFastest

// An encoder holds the scratch state of one Compress call. Encoders are
// pooled because the huff0 and fse tables and the zstd match finder are
// expensive to set up for every block.
type encoder struct {
	planes []byte
	best   []byte
	huff   huff0.Scratch
	fse    fse.Scratch
	zstd   *zstd.Encoder
}

var encoderPool = sync.Pool{
	New: func() any { return new(encoder) },
}

// init prepares the zstd encoder of a fresh encoder. Concurrency 1 keeps
// EncodeAll on the calling goroutine; with no dictionary, a fixed level and
// a fixed window the output depends on the input alone.
func (e *encoder) init() error {
	if e.zstd != nil {
		return nil
	}
	z, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(zstdLevel),
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(chunkElems),
		zstd.WithEncoderCRC(false),
		zstd.WithZeroFrames(true),
		zstd.WithSingleSegment(true),
	)
	if err != nil {
		return fmt.Errorf("lossless: zstd encoder: %w", err)
	}
	e.zstd = z
	return nil
}

// fseMargin is how much smaller, as a fraction 1/fseMargin of the best
// other coding, an fse coding must be to be chosen. fse decodes several
// times slower than huff0 and on exponent streams of real weights saves only
// about 0.3 %; the margin keeps fse for the strongly skewed blocks where
// Huffman's one bit per symbol floor makes it lose by far more.
const fseMargin = 64

// encodeBlock appends the chosen coding of p to dst and returns its method.
// p must not be empty. A constant block is always coded as such; otherwise
// the smallest of stored, huff0 and zstd wins, ties going to the earlier,
// faster-decoding method, and fse replaces it only when smaller by more than
// 1/fseMargin. The choice is a pure function of p.
func (e *encoder) encodeBlock(dst, p []byte) ([]byte, method) {
	if isConstant(p) {
		return append(dst, p[0]), methodConstant
	}
	bestMethod := methodStored
	bestLen := len(p)
	e.best = e.best[:0]
	// No order-0 coder can go below the block's empirical entropy, so a
	// coder whose bound already loses is not run: the mantissa streams of
	// real weights are nearly uniform and would be coded only to be
	// discarded.
	bound := entropyBound(p)

	if bound < bestLen {
		e.huff.Reuse = huff0.ReusePolicyNone
		if out, _, err := huff0.Compress4X(p, &e.huff); err == nil && len(out) < bestLen {
			bestMethod, bestLen = methodHuff0, len(out)
			e.best = append(e.best[:0], out...)
		}
	}
	// zstd's output goes straight to dst and is cut off again if it loses,
	// which saves a copy in the common case of it losing.
	mark := len(dst)
	dst = e.zstd.EncodeAll(p, dst)
	if z := len(dst) - mark; z < bestLen {
		bestMethod, bestLen = methodZstd, z
	} else {
		dst = dst[:mark]
	}
	if want := bestLen - bestLen/fseMargin; bound < want {
		if out, err := fse.Compress(p, &e.fse); err == nil && len(out) < want {
			return append(dst[:mark], out...), methodFSE
		}
	}
	switch bestMethod {
	case methodZstd:
		return dst, methodZstd
	case methodStored:
		return append(dst, p...), methodStored
	}
	return append(dst, e.best...), bestMethod
}

// entropyBound returns the empirical order-0 entropy of p in whole bytes,
// rounded down: Huffman codes cannot be shorter and tANS codes only by a few
// bits. It uses integer arithmetic so that the encoder's choices, and so its
// output, are the same on every platform.
func entropyBound(p []byte) int {
	var hist [256]uint64
	for _, b := range p {
		hist[b]++
	}
	n := uint64(len(p))
	logN := log2Fixed(n)
	var cost uint64 // in bits, with log2FracBits fractional bits
	for _, c := range hist {
		if c != 0 {
			cost += c * (logN - log2Fixed(c))
		}
	}
	return int(cost >> (log2FracBits + 3))
}

// log2FracBits is the number of fractional bits of log2Fixed's result.
const log2FracBits = 16

// log2Fixed returns log2(x) for x >= 1 in fixed point with log2FracBits
// fractional bits, rounded down, by repeated squaring of the mantissa.
func log2Fixed(x uint64) uint64 {
	ip := uint64(bits.Len64(x) - 1)
	y := x << (63 - ip) // the mantissa in [1, 2) with 63 fractional bits
	var frac uint64
	for range log2FracBits {
		hi, lo := bits.Mul64(y, y) // y² in [1, 4) with 126 fractional bits
		frac <<= 1
		if hi >= 1<<63 {
			frac |= 1
			y = hi
		} else {
			y = hi<<1 | lo>>63
		}
	}
	return ip<<log2FracBits | frac
}

// isConstant reports whether every byte of p equals p[0].
func isConstant(p []byte) bool {
	for _, b := range p[1:] {
		if b != p[0] {
			return false
		}
	}
	return true
}

// A decoder holds the scratch state of one Decompress call.
type decoder struct {
	planes []byte
	huff   *huff0.Scratch
	fse    fse.Scratch
}

var decoderPool = sync.Pool{
	New: func() any { return &decoder{huff: new(huff0.Scratch)} },
}

// zstdDecoder is shared by all calls: DecodeAll is safe for concurrent use
// and keeps its own bounded pool of frame decoders. Its limits make any
// frame that could decode to more than one block fail before allocating.
var zstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil,
		zstd.WithDecoderMaxMemory(chunkElems),
		zstd.WithDecoderMaxWindow(chunkElems),
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderLowmem(true),
	)
})

// The accuracy log of an fse block is the low nibble of its first byte
// plus fseMinLog; FORMAT.md §7.2 allows up to fseMaxLog.
const (
	fseMinLog = 5
	fseMaxLog = 12
)

// errLength reports a block that decoded to the wrong number of bytes.
var errLength = errors.New("decoded block length mismatch")

// decodeBlock decodes payload, coded with m, into out, which has the exact
// length of the block. The returned error, if any, is the coder's own and
// the caller wraps it with the position.
func (d *decoder) decodeBlock(out, payload []byte, m method) error {
	switch m {
	case methodStored:
		if len(payload) != len(out) {
			return errLength
		}
		copy(out, payload)
	case methodConstant:
		if len(payload) != 1 {
			return fmt.Errorf("constant block has %d payload bytes, want 1", len(payload))
		}
		for i := range out {
			out[i] = payload[0]
		}
	case methodHuff0:
		s, rest, err := huff0.ReadTable(payload, d.huff)
		if err != nil {
			return err
		}
		d.huff = s
		// The capacity of the destination is the exact decoded size, which
		// is how huff0's 4X decoder learns it and bounds its writes.
		got, err := s.Decoder().Decompress4X(out[:0:len(out)], rest)
		if err != nil {
			return err
		}
		if len(got) != len(out) {
			return errLength
		}
	case methodFSE:
		// The format caps the accuracy log at 12, as Collet's FSE does;
		// fse.Decompress would take up to 15.
		if len(payload) > 0 && int(payload[0]&15)+fseMinLog > fseMaxLog {
			return fmt.Errorf("fse accuracy log %d > %d", int(payload[0]&15)+fseMinLog, fseMaxLog)
		}
		// fse checks its limit only every 256 symbols, with >=, so the
		// limit sits one past the wanted length. Corrupt input can run
		// up to 256 bytes past it first; the capacity limit makes that
		// overrun reallocate instead of writing into the next stream.
		d.fse.DecompressLimit = len(out) + 1
		d.fse.Out = out[:0:len(out)]
		got, err := fse.Decompress(payload, &d.fse)
		d.fse.Out = nil
		if err != nil {
			return err
		}
		if len(got) != len(out) {
			return errLength
		}
		copy(out, got)
	case methodZstd:
		zd, err := zstdDecoder()
		if err != nil {
			return err
		}
		got, err := zd.DecodeAll(payload, out[:0:len(out)])
		if err != nil {
			return err
		}
		if len(got) != len(out) {
			return errLength
		}
		copy(out, got)
	default:
		return fmt.Errorf("unknown method %d", m)
	}
	return nil
}
