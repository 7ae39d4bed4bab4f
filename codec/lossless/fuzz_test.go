package lossless

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// dtypeByIndex picks a dtype for fuzz inputs from a byte.
func dtypeByIndex(i uint8) string {
	all := allDTypes()
	return all[int(i)%len(all)]
}

// FuzzDecompress feeds arbitrary data to Decompress with the element count
// the data claims, so mutations reach the block decoders. Whatever decodes
// must survive a further round trip.
func FuzzDecompress(f *testing.F) {
	// The corpus in testdata/fuzz/FuzzDecompress holds one valid stream
	// per method and layout; these add the smallest cases.
	f.Add([]byte{1, 1, 2, 0}, uint8(1))
	f.Add([]byte{1, 1, 2, 2, 0, 2, 0, 2, 0x7f, 0x80, 0x00, 0x80}, uint8(1))
	f.Fuzz(func(t *testing.T, src []byte, dt uint8) {
		dtype := dtypeByIndex(dt)
		n := 0
		if len(src) > headerLen {
			v, w := uvarint(src[headerLen:])
			// Larger counts are rejected before any work that depends
			// on them; skipping them keeps executions fast.
			if w <= 0 || v > 1<<20 {
				return
			}
			n = int(v)
		}
		got, err := Decompress(nil, src, dtype, n)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not match ErrCorrupt", err)
			}
			return
		}
		if len(got) != n*dtypes[dtype].size {
			t.Fatalf("decoded %d bytes for %d elements of %s", len(got), n, dtype)
		}
		z, err := Compress(nil, got, dtype)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Decompress(nil, z, dtype, n)
		if err != nil || !bytes.Equal(again, got) {
			t.Fatalf("round trip of decoded data failed: %v", err)
		}
	})
}

// FuzzRoundTrip checks that Compress output decodes to its input and is
// within MaxEncodedLen, for every layout.
func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{}, uint8(0))
	f.Add([]byte("\x00\x00\x80\x3f\x00\x00\xc0\xbf"), uint8(5))
	f.Add(bytes.Repeat([]byte("abcdefgh"), 300), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, dt uint8) {
		dtype := dtypeByIndex(dt)
		size := dtypes[dtype].size
		data = data[:len(data)/size*size]
		z, err := Compress(nil, data, dtype)
		if err != nil {
			t.Fatal(err)
		}
		n := len(data) / size
		if max, err := MaxEncodedLen(dtype, n); err != nil || len(z) > max {
			t.Fatalf("compressed %d bytes, MaxEncodedLen %d (%v)", len(z), max, err)
		}
		got, err := Decompress(nil, z, dtype, n)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, data) {
			t.Fatal("round trip differs")
		}
	})
}

// A plan entry describes one block descriptor of FuzzBlockHeaders: the
// method byte, how its length is declared, a tweak of the payload's table
// header and a 3-byte little-endian length.
const planEntry = 6

// Length modes of a plan entry: how the declared block length is derived.
const (
	lenAsGiven    = iota // the entry's length field, minimally encoded
	lenBlock             // the block's raw length
	lenBlockLess         // one less than the raw length
	lenBlockMore         // one more than the raw length
	lenZero              // zero
	lenHuge              // 2^40
	lenNonMinimal        // the length field with a redundant continuation byte
	lenMaxUint           // 2^64-1, a 10-byte varint
	numLenModes
)

// Header flags of FuzzBlockHeaders, each breaking one header field.
const (
	hdrVersion    = 1 << iota // a version other than Version
	hdrLayout                 // the next layout
	hdrStreams                // one stream too many
	hdrCallerN                // the caller expects one element more
	hdrNonMinimal             // the element count with a redundant byte
)

// FuzzBlockHeaders builds lossless streams from a structured description
// so that mutations land on the fields a hostile file controls rather than
// mostly on checksummed or entropy-coded bytes: the header's version,
// layout, stream count and element count (up to 2^64-1), and for each
// block its method, declared length (zero, off by one, huge, non-minimal)
// and the first bytes of its payload that huff0, fse and zstd read as
// table headers, table logs and frame window sizes. Seeds are the streams
// of testdata/fuzz/FuzzDecompress decomposed into that description, so the
// unmutated seeds decode. CheckHeader must refuse what Decompress refuses
// before decoding a block, with the same error. Decompress must return
// ErrCorrupt or ErrLength, or exactly n elements that survive a round
// trip; a count the input cannot hold must fail before anything is sized
// from it.
func FuzzBlockHeaders(f *testing.F) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecompress")
	ents, err := os.ReadDir(dir)
	if err != nil {
		f.Fatal(err)
	}
	seeded := 0
	for _, e := range ents {
		src, err := corpusBytes(filepath.Join(dir, e.Name()))
		if err != nil {
			f.Fatalf("%s: %v", e.Name(), err)
		}
		dt, count, plan, payloads, ok := decompose(src)
		if !ok {
			continue
		}
		if rebuilt, complete := buildStream(dtypes[dtypeByIndex(dt)], 0, count, plan, payloads); !complete || !bytes.Equal(rebuilt, src) {
			f.Fatalf("%s: the decomposed stream does not rebuild to the original", e.Name())
		}
		f.Add(dt, uint8(0), count, plan, payloads)
		seeded++
	}
	if seeded == 0 {
		f.Fatalf("no stream in %s could be decomposed", dir)
	}
	// Hostile counts with a plausible first descriptor.
	f.Add(uint8(0), uint8(0), uint64(1)<<62, []byte{byte(methodConstant), lenAsGiven, 0, 1, 0, 0}, []byte{7})
	f.Add(uint8(3), uint8(0), uint64(math.MaxUint64), []byte{byte(methodStored), lenHuge, 0, 0, 0, 0}, []byte{1, 2})
	f.Add(uint8(5), uint8(hdrCallerN), uint64(chunkElems+1), []byte{byte(methodFSE), lenAsGiven, 0x0f, 4, 0, 0}, []byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, dt, hdr uint8, count uint64, plan, payloads []byte) {
		dtype := dtypeByIndex(dt)
		fm := dtypes[dtype]
		src, complete := buildStream(fm, hdr, count, plan, payloads)
		n := -1
		if count <= math.MaxInt {
			n = int(count)
		}
		if hdr&hdrCallerN != 0 && n >= 0 && n < math.MaxInt {
			n++
		}
		// A complete plan for a large count is a valid large tensor
		// (constant blocks take 3 bytes per 128 Ki); decoding it only
		// costs time.
		if complete && n > 0 && uint64(n)*uint64(fm.size) > 16<<20 {
			return
		}
		herr := CheckHeader(src, dtype, n)
		got, err := Decompress(nil, src, dtype, n)
		if herr != nil && (err == nil || err.Error() != herr.Error()) {
			t.Fatalf("CheckHeader: %v; Decompress: %v", herr, err)
		}
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrLength) {
				t.Fatalf("error %v matches neither ErrCorrupt nor ErrLength", err)
			}
			return
		}
		if !complete {
			t.Fatalf("decoded %d elements from a stream with fewer descriptors than blocks", n)
		}
		if len(got) != n*fm.size {
			t.Fatalf("decoded %d bytes for %d elements of %s", len(got), n, dtype)
		}
		z, err := Compress(nil, got, dtype)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Decompress(nil, z, dtype, n)
		if err != nil || !bytes.Equal(again, got) {
			t.Fatalf("round trip of decoded data failed: %v", err)
		}
	})
}

// buildStream lays out a stream from a FuzzBlockHeaders description. It
// writes one descriptor per whole plan entry, up to the number of blocks
// the count needs, and reports whether that was all of them.
func buildStream(fm elemFormat, hdr uint8, count uint64, plan, payloads []byte) (src []byte, complete bool) {
	version, lay, streams := byte(Version), byte(fm.layout), byte(fm.size)
	if hdr&hdrVersion != 0 {
		version++
	}
	if hdr&hdrLayout != 0 {
		lay++
	}
	if hdr&hdrStreams != 0 {
		streams++
	}
	src = append(src, version, lay, streams)
	src = appendVarint(src, count, hdr&hdrNonMinimal != 0)

	chunks := count/chunkElems + min(count%chunkElems, 1)
	blocks := uint64(len(plan) / planEntry)
	if chunks <= blocks/uint64(fm.size) {
		blocks = chunks * uint64(fm.size)
		complete = true
	}
	data := bytes.Clone(payloads)
	var at uint64 // where the block's payload starts in data, as declared
	for i := range blocks {
		e := plan[i*planEntry : (i+1)*planEntry]
		c := i / uint64(fm.size)
		blockLen := min(chunkElems, count-c*chunkElems)
		given := uint64(e[3]) | uint64(e[4])<<8 | uint64(e[5])<<16
		var l uint64
		nonMinimal := false
		switch e[1] % numLenModes {
		case lenAsGiven:
			l = given
		case lenBlock:
			l = blockLen
		case lenBlockLess:
			l = blockLen - 1
		case lenBlockMore:
			l = blockLen + 1
		case lenZero:
			l = 0
		case lenHuge:
			l = 1 << 40
		case lenNonMinimal:
			l, nonMinimal = given, true
		case lenMaxUint:
			l = math.MaxUint64
		}
		meth := e[0] % (numMethods + 2) // two unknown methods too
		src = append(src, meth)
		src = appendVarint(src, l, nonMinimal)
		if tw := e[2]; tw != 0 && at < uint64(len(data)) {
			p := data[at:]
			switch method(meth) {
			case methodHuff0:
				p[0] = tw // huff0's table header: FSE-coded or raw 4-bit weights
			case methodFSE:
				p[0] = p[0]&0xf0 | tw&0x0f // the accuracy log nibble
			case methodZstd:
				// Frame header descriptor, then the window descriptor or
				// the first byte of the content size.
				if len(p) > 5 {
					p[4+int(tw>>7)] = tw & 0x7f << 1
				}
			}
		}
		at += l
	}
	return append(src, data...), complete
}

// appendVarint appends v as a uvarint, with a redundant trailing zero
// continuation when nonMinimal is set.
func appendVarint(b []byte, v uint64, nonMinimal bool) []byte {
	if !nonMinimal {
		return binary.AppendUvarint(b, v)
	}
	start := len(b)
	b = binary.AppendUvarint(b, v)
	if len(b)-start < binary.MaxVarintLen64 {
		b[len(b)-1] |= 0x80
		b = append(b, 0)
	}
	return b
}

// decompose turns a valid stream into a FuzzBlockHeaders description: a
// dtype index with its layout, the count, one lenAsGiven plan entry per
// descriptor and the payloads.
func decompose(src []byte) (dt uint8, count uint64, plan, payloads []byte, ok bool) {
	if len(src) < headerLen+1 {
		return 0, 0, nil, nil, false
	}
	all := allDTypes()
	found := false
	for i, name := range all {
		if fm := dtypes[name]; byte(fm.layout) == src[1] && byte(fm.size) == src[2] {
			dt, found = uint8(i), true
			break
		}
	}
	if !found {
		return 0, 0, nil, nil, false
	}
	fm := dtypes[all[dt]]
	count, w := uvarint(src[headerLen:])
	if w <= 0 || count > 1<<24 {
		return 0, 0, nil, nil, false
	}
	descOff, dataOff, err := parseHeader(src, fm, int(count))
	if err != nil {
		return 0, 0, nil, nil, false
	}
	for off := descOff; off < dataOff; {
		l, w := uvarint(src[off+1:])
		plan = append(plan, src[off], lenAsGiven, 0, byte(l), byte(l>>8), byte(l>>16))
		off += 1 + w
	}
	return dt, count, plan, src[dataOff:], true
}

// corpusBytes reads the []byte value of a one-value-first corpus file as
// "go test fuzz v1" writes it.
func corpusBytes(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 2 || lines[0] != "go test fuzz v1" {
		return nil, fmt.Errorf("not a fuzz corpus file")
	}
	v, ok := strings.CutPrefix(lines[1], "[]byte(")
	if v, ok = strings.CutSuffix(v, ")"); !ok {
		return nil, fmt.Errorf("first value is not []byte: %q", lines[1])
	}
	s, err := strconv.Unquote(v)
	return []byte(s), err
}
