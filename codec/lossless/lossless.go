// Package lossless implements bit-exact compression of tensor bytes that
// exploits the structure of floating-point numbers, in the manner of ZipNN.
//
// Each element is split so that bits with similar statistics share a byte
// stream: the exponent of a trained weight takes only a few dozen values,
// while sign and mantissa bits are close to uniform. Each stream is cut into
// blocks of 128 Ki bytes and every block is coded with whichever of huff0 or
// zstd from github.com/klauspost/compress is smallest, with fse when it is
// clearly smaller still, stored verbatim when none helps, or as a single
// byte when the block is constant.
// The exact byte format is given in FORMAT.md, section 7.2 ("lossless").
//
// Output depends only on the input bytes and dtype, so compressing the same
// tensor twice yields identical bytes.
package lossless

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
)

// Version is the format version written in the first byte of every
// compressed tensor.
const Version = 1

// chunkElems is the number of elements per chunk, and so the length in bytes
// of every stream block except the last. It keeps blocks under huff0's
// limit of 256 KiB - 1 and bounds the decoder's scratch memory to
// 8 * 128 KiB. Changing it changes the format.
const chunkElems = 128 << 10

// headerLen is the length of the fixed header before the element count.
const headerLen = 3

// maxDescLen bounds one block descriptor: a method byte and the uvarint of a
// length of at most chunkElems, which needs 3 bytes.
const maxDescLen = 1 + 3

var (
	// ErrCorrupt is matched by errors.Is for every error caused by malformed
	// compressed data.
	ErrCorrupt = errors.New("lossless: corrupt input")
	// ErrDType reports a dtype name that this package cannot code.
	ErrDType = errors.New("unsupported dtype")
	// ErrLength reports a length or element count that does not fit the
	// dtype, such as raw bytes that are not a whole number of elements.
	ErrLength = errors.New("lossless: invalid length")
)

// A CorruptError describes malformed compressed data. Offset is the byte
// offset within the compressed input where the problem was found.
type CorruptError struct {
	Offset int
	Msg    string
	Err    error // error from the entropy decoder, if any
}

// Error describes the problem and where it was found.
func (e *CorruptError) Error() string {
	s := "lossless: corrupt input at offset " + strconv.Itoa(e.Offset) + ": " + e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes every CorruptError match ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

// Unwrap returns the entropy decoder's error, if any.
func (e *CorruptError) Unwrap() error { return e.Err }

func corrupt(off int, format string, args ...any) error {
	return &CorruptError{Offset: off, Msg: fmt.Sprintf(format, args...)}
}

// numChunks returns the number of chunks that hold n elements.
func numChunks(n int) int {
	return n/chunkElems + min(n%chunkElems, 1)
}

// MaxEncodedLen returns the largest size Compress can produce for n
// elements of dtype: the raw size plus the header and at most 4 bytes per
// stream block, which is what storing every block costs.
func MaxEncodedLen(dtype string, n int) (int, error) {
	f, err := lookupDType(dtype)
	if err != nil {
		return 0, err
	}
	if n < 0 || n > (math.MaxInt-64)/(f.size+1) {
		return 0, fmt.Errorf("%w: %d elements of %s", ErrLength, n, dtype)
	}
	// numChunks*size*maxDescLen <= n*size/32768+32 cannot overflow here.
	return headerLen + binary.MaxVarintLen64 + n*f.size + numChunks(n)*f.size*maxDescLen, nil
}

// Compress appends the compressed form of src, the little-endian bytes of
// elements of the given safetensors dtype ("BF16", "F16", "F32", "F64",
// "I8" to "I64", "U8" to "U64", "BOOL", "C64" and the 8-bit floats),
// to dst and returns the extended buffer. len(src) must be a multiple of the
// element size. It is safe to call Compress from several goroutines.
func Compress(dst, src []byte, dtype string) ([]byte, error) {
	f, err := lookupDType(dtype)
	if err != nil {
		return dst, err
	}
	if len(src)%f.size != 0 {
		return dst, fmt.Errorf("%w: %d bytes is not a whole number of %s elements", ErrLength, len(src), dtype)
	}
	n := len(src) / f.size
	e := encoderPool.Get().(*encoder)
	defer encoderPool.Put(e)
	if err := e.init(); err != nil {
		return dst, err
	}

	dst = append(dst, Version, byte(f.layout), byte(f.size))
	dst = binary.AppendUvarint(dst, uint64(n))

	// Descriptors precede the payloads but their lengths are only known
	// after coding, so payloads are written after a gap sized for the
	// longest descriptors and moved down over the unused part at the end.
	blocks := numChunks(n) * f.size
	descOff := len(dst)
	gap := blocks * maxDescLen
	dst = slices.Grow(dst, gap+len(src)/2)
	dst = dst[:descOff+gap]
	desc := descOff
	for c := 0; c < n; c += chunkElems {
		m := min(chunkElems, n-c)
		if cap(e.planes) < f.size*m {
			e.planes = make([]byte, f.size*m)
		}
		planes := e.planes[:f.size*m]
		split(f, planes, src[c*f.size:], m)
		for k := range f.size {
			mark := len(dst)
			var meth method
			dst, meth = e.encodeBlock(dst, planes[k*m:(k+1)*m])
			// The descriptor area is written in place; it never catches up
			// with the payloads because it was sized for the worst case.
			dst[desc] = byte(meth)
			desc += 1 + binary.PutUvarint(dst[desc+1:], uint64(len(dst)-mark))
		}
	}
	body := dst[descOff+gap:]
	n2 := copy(dst[desc:], body)
	return dst[:desc+n2], nil
}

// Decompress decodes src, produced by Compress for n elements of dtype, and
// appends exactly n times the element size bytes to dst. dtype and n must
// match what the data records; any mismatch or malformation yields an error
// matching ErrCorrupt, and dst is then returned unextended. Nothing is
// allocated before the header and all block descriptors have been checked
// against len(src); beyond the output, memory use is at most 1 MiB of
// pooled scratch plus the shared zstd decoder's state, bounded by its
// 128 KiB window. It is safe to call Decompress from several goroutines.
func Decompress(dst, src []byte, dtype string, n int) ([]byte, error) {
	f, err := lookupDType(dtype)
	if err != nil {
		return dst, err
	}
	if n < 0 || n > math.MaxInt/f.size {
		return dst, fmt.Errorf("%w: %d elements of %s", ErrLength, n, dtype)
	}
	descOff, dataOff, err := parseHeader(src, f, n)
	if err != nil {
		return dst, err
	}

	d := decoderPool.Get().(*decoder)
	defer decoderPool.Put(d)

	orig := len(dst)
	dst = slices.Grow(dst, n*f.size)
	out := dst[orig : orig+n*f.size]
	desc, data := descOff, dataOff
	for c := 0; c < n; c += chunkElems {
		m := min(chunkElems, n-c)
		if cap(d.planes) < f.size*m {
			d.planes = make([]byte, f.size*m)
		}
		planes := d.planes[:f.size*m]
		for k := range f.size {
			// parseHeader validated every descriptor, so only the
			// payloads can still be wrong.
			meth := method(src[desc])
			l, w := binary.Uvarint(src[desc+1:])
			desc += 1 + w
			payload := src[data : data+int(l)]
			if err := d.decodeBlock(planes[k*m:(k+1)*m], payload, meth); err != nil {
				return dst[:orig], &CorruptError{
					Offset: data,
					Msg:    fmt.Sprintf("block %d of stream %d (method %d)", c/chunkElems, k, meth),
					Err:    err,
				}
			}
			data += int(l)
		}
		merge(f, out[c*f.size:], planes, m)
	}
	return dst[:orig+n*f.size], nil
}

// CheckHeader reports the error Decompress would return for src, n and
// dtype before it decodes a block: a wrong header, or block descriptors
// that do not fit the element count or the input's length. It allocates
// nothing, so a caller can run it before allocating the output.
func CheckHeader(src []byte, dtype string, n int) error {
	f, err := lookupDType(dtype)
	if err != nil {
		return err
	}
	if n < 0 || n > math.MaxInt/f.size {
		return fmt.Errorf("%w: %d elements of %s", ErrLength, n, dtype)
	}
	_, _, err = parseHeader(src, f, n)
	return err
}

// parseHeader checks the header and every block descriptor of src against
// the format f and element count n, and returns the offsets of the first
// descriptor and the first payload. After it succeeds every descriptor can
// be read without further checks and the payloads exactly fill the rest of
// src.
func parseHeader(src []byte, f elemFormat, n int) (descOff, dataOff int, err error) {
	if len(src) < headerLen+1 {
		return 0, 0, corrupt(0, "header truncated (%d bytes)", len(src))
	}
	if src[0] != Version {
		return 0, 0, corrupt(0, "unsupported version %d", src[0])
	}
	if layout(src[1]) != f.layout {
		return 0, 0, corrupt(1, "stream layout %d does not match dtype (layout %d)", src[1], f.layout)
	}
	if int(src[2]) != f.size {
		return 0, 0, corrupt(2, "%d streams, dtype needs %d", src[2], f.size)
	}
	count, w := uvarint(src[headerLen:])
	if w <= 0 {
		return 0, 0, corrupt(headerLen, "bad element count")
	}
	if count != uint64(n) {
		return 0, 0, corrupt(headerLen, "data holds %d elements, caller expects %d", count, n)
	}
	off := headerLen + w
	blocks := numChunks(n) * f.size
	// A descriptor takes at least 2 bytes and a payload at least 1, so this
	// rejects huge counts before anything is sized from them.
	if blocks > (len(src)-off)/3 {
		return 0, 0, corrupt(off, "%d bytes cannot hold %d blocks", len(src)-off, blocks)
	}
	descOff = off
	total := 0
	for i := range blocks {
		c := i / f.size
		blockLen := min(chunkElems, n-c*chunkElems)
		if off >= len(src) {
			return 0, 0, corrupt(off, "block descriptors truncated")
		}
		meth := method(src[off])
		if meth >= numMethods {
			return 0, 0, corrupt(off, "unknown method %d", meth)
		}
		l, w := uvarint(src[off+1:])
		if w <= 0 || l > uint64(len(src)) {
			return 0, 0, corrupt(off+1, "bad block length")
		}
		switch meth {
		case methodStored:
			if l != uint64(blockLen) {
				return 0, 0, corrupt(off+1, "stored block of %d bytes, want %d", l, blockLen)
			}
		case methodConstant:
			if l != 1 {
				return 0, 0, corrupt(off+1, "constant block of %d bytes, want 1", l)
			}
		default:
			// The encoder stores a block rather than let it grow.
			if l == 0 || l >= uint64(blockLen) {
				return 0, 0, corrupt(off+1, "coded block of %d bytes for %d raw bytes", l, blockLen)
			}
		}
		total += int(l)
		if total > len(src) {
			return 0, 0, corrupt(off+1, "payloads exceed input")
		}
		off += 1 + w
	}
	if total != len(src)-off {
		return 0, 0, corrupt(off, "payloads take %d bytes, %d remain", total, len(src)-off)
	}
	return descOff, off, nil
}

// uvarint is binary.Uvarint restricted to the shortest encoding, so that
// every value has exactly one representation. It returns w <= 0 on error.
func uvarint(b []byte) (v uint64, w int) {
	v, w = binary.Uvarint(b)
	if w > 1 && b[w-1] == 0 {
		return 0, -w
	}
	return v, w
}
