package conformance_test

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"

	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
)

// Fix-up modes of FuzzDifferential: which checksums and lengths the
// harness recomputes after the fuzzer's mutation, so that mutations reach
// the index and the codecs instead of stopping at a CRC.
const (
	fixPreamble = 1 << iota // the preamble's CRC
	fixTrailer              // the index CRC and the trailer's CRC
	fixLengths              // index_length and file_size from the actual size
	fixSections             // section CRCs stored as uint32 in an uncompressed index
)

// maxFuzzDecoded bounds the decoded size of an input worth decoding twice:
// a few bytes may declare gigabytes of zeros.
const maxFuzzDecoded = 4 << 20

// maxFuzzSeed leaves out the largest golden (edge_cases.nwc, 96 KiB): the
// fuzzer mutates and runs small files many times faster. Its scalar, empty
// and many-group tensors are still cross-checked by TestSpecGoldens, and
// the regression inputs hold an empty tensor.
const maxFuzzSeed = 32 << 10

// FuzzDifferential feeds the same bytes to the reference decoder (spec)
// and the fast path (reader): both must give the same tensors bit for bit,
// or errors of the same class. Seeds: every conformance file, as is and
// with every fix-up.
func FuzzDifferential(f *testing.F) {
	// testdata/fuzz/FuzzDifferential holds regression cases: files on
	// which the two decoders once disagreed.
	for _, dir := range []string{"testdata/golden", "testdata/invalid"} {
		names, _ := filepath.Glob(filepath.Join(dir, "*.nwc"))
		for _, name := range names {
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			if len(b) > maxFuzzSeed {
				continue
			}
			f.Add(b, uint8(0))
			f.Add(b, uint8(fixPreamble|fixTrailer|fixLengths|fixSections))
			// The writer compresses most indexes, where a mutation
			// rarely survives decompression: fuzz them stored plain too.
			if u := uncompressIndex(b); u != nil {
				f.Add(u, uint8(fixPreamble|fixTrailer|fixLengths|fixSections))
			}
		}
	}
	builtin := builtinBlobs(f)
	f.Fuzz(func(t *testing.T, b []byte, mode uint8) {
		b = fixUp(bytes.Clone(b), mode)
		if r, err := reader.NewReader(bytes.NewReader(b), int64(len(b)), nil); err == nil {
			total := uint64(0)
			for _, tn := range r.Tensors() {
				total += tn.NumElements() * uint64(tn.DType().Size())
			}
			if total > maxFuzzDecoded {
				t.Skip("declares more decoded bytes than is worth decoding twice")
			}
		}
		compareDecoders(t, b, builtin)
	})
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// uncompressIndex returns the file b with its compressed index stored as
// plain msgpack (a valid file if b was), or nil if b's index is not
// compressed or not found.
func uncompressIndex(b []byte) []byte {
	if len(b) < 72 {
		return nil
	}
	le := binary.LittleEndian
	t := b[len(b)-40:]
	ioff, ilen := le.Uint64(t), le.Uint64(t[8:])
	if ioff < 32 || ioff > uint64(len(b)-40) || ilen != uint64(len(b)-40)-ioff || !format.IndexCompressed(b[ioff:ioff+ilen]) {
		return nil
	}
	ix, err := format.DecompressIndex(b[ioff:ioff+ilen], 0, format.DefaultMaxIndexSize)
	if err != nil {
		return nil
	}
	out := append(bytes.Clone(b[:ioff]), ix...)
	tr := format.Trailer{IndexOffset: ioff, IndexLength: uint64(len(ix)), FileSize: uint64(len(out) + 40), IndexCRC: format.CRC(ix)}.Marshal()
	return append(out, tr[:]...)
}

// fixUp recomputes the checksums and lengths mode selects, where the
// bytes still locate them.
func fixUp(b []byte, mode uint8) []byte {
	le := binary.LittleEndian
	if mode&fixPreamble != 0 && len(b) >= 32 {
		le.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
	}
	if len(b) < 72 {
		return b
	}
	t := b[len(b)-40:]
	toff := uint64(len(b) - 40)
	ioff := le.Uint64(t)
	if mode&fixLengths != 0 && ioff >= 32 && ioff <= toff {
		le.PutUint64(t[8:], toff-ioff)
		le.PutUint64(t[16:], uint64(len(b)))
	}
	if ioff < 32 || ioff > toff || le.Uint64(t[8:]) != toff-ioff {
		return b
	}
	ix := b[ioff:toff]
	if mode&fixSections != 0 && len(ix) > 0 && ix[0] != 0x28 {
		fixSectionCRCs(b, ix)
	}
	if mode&fixTrailer != 0 {
		le.PutUint32(t[24:], crc32.Checksum(ix, castagnoli))
		le.PutUint32(t[28:], crc32.Checksum(t[:28], castagnoli))
	}
	return b
}

// fixSectionCRCs looks in the msgpack index ix for arrays of 3 or 4
// unsigned integers ending in a uint32 (0xce) — sections [offset, length,
// crc] and groups [end, offset, length, crc] — whose offset and length lie
// in the file, and rewrites the CRC of those bytes.
func fixSectionCRCs(file, ix []byte) {
	for i := range ix {
		n := int(ix[i]) - 0x90
		if n != 3 && n != 4 {
			continue
		}
		p := i + 1
		vals := make([]uint64, n)
		ok := true
		var crcAt int
		for k := range n {
			if p >= len(ix) {
				ok = false
				break
			}
			c := ix[p]
			w := 0
			switch {
			case c <= 0x7f:
				vals[k], w = uint64(c), 1
			case c >= 0xcc && c <= 0xcf:
				size := 1 << (c - 0xcc)
				if p+1+size > len(ix) {
					ok = false
					break
				}
				for _, x := range ix[p+1 : p+1+size] {
					vals[k] = vals[k]<<8 | uint64(x)
				}
				w = 1 + size
			default:
				ok = false
			}
			if !ok {
				break
			}
			if k == n-1 {
				crcAt = p
				ok = c == 0xce
			}
			p += w
		}
		if !ok {
			continue
		}
		off, length := vals[n-3], vals[n-2]
		if off > uint64(len(file)) || length > uint64(len(file))-off {
			continue
		}
		binary.BigEndian.PutUint32(ix[crcAt+1:], crc32.Checksum(file[off:off+length], castagnoli))
	}
}
