package format

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// CastagnoliTable is the CRC32C table every checksum of the format uses.
var CastagnoliTable = crc32.MakeTable(crc32.Castagnoli)

// CRC returns the CRC32C of b.
func CRC(b []byte) uint32 { return crc32.Checksum(b, CastagnoliTable) }

// A Preamble is the fixed header at offset 0.
type Preamble struct {
	Major, Minor uint16
	AlignLog2    uint8
}

// Marshal encodes the preamble.
func (p Preamble) Marshal() [PreambleLen]byte {
	var b [PreambleLen]byte
	copy(b[:], Magic)
	binary.LittleEndian.PutUint16(b[8:], p.Major)
	binary.LittleEndian.PutUint16(b[10:], p.Minor)
	b[12] = p.AlignLog2
	binary.LittleEndian.PutUint32(b[preambleCRCOff:], CRC(b[:preambleCRCOff]))
	return b
}

// ParsePreamble decodes and checks the preamble: magic, checksum, major
// version, alignment and zero reserved bytes.
func ParsePreamble(b []byte) (Preamble, error) {
	var p Preamble
	if len(b) < PreambleLen {
		return p, Errorf(0, "file too short for the %d-byte preamble", PreambleLen)
	}
	if string(b[:8]) != Magic {
		return p, Errorf(0, "not an nwc file (bad magic %q)", b[:8])
	}
	if want, got := binary.LittleEndian.Uint32(b[preambleCRCOff:]), CRC(b[:preambleCRCOff]); want != got {
		return p, &ChecksumError{What: "preamble", Off: 0, Want: want, Got: got}
	}
	p.Major = binary.LittleEndian.Uint16(b[8:])
	p.Minor = binary.LittleEndian.Uint16(b[10:])
	p.AlignLog2 = b[12]
	if p.Major != VersionMajor {
		return p, UnsupportedError(fmt.Sprintf("major version %d (this reader knows %d)", p.Major, VersionMajor))
	}
	if p.AlignLog2 < MinAlignLog2 || p.AlignLog2 > MaxAlignLog2 {
		return p, Errorf(12, "alignment 2^%d outside [2^%d, 2^%d]", p.AlignLog2, MinAlignLog2, MaxAlignLog2)
	}
	for i := 13; i < preambleCRCOff; i++ {
		if b[i] != 0 {
			return p, Errorf(int64(i), "reserved preamble byte is %#02x, want 0", b[i])
		}
	}
	return p, nil
}

// A Trailer is the fixed footer at the end of the file.
type Trailer struct {
	IndexOffset uint64
	IndexLength uint64
	FileSize    uint64
	IndexCRC    uint32
}

// Marshal encodes the trailer.
func (t Trailer) Marshal() [TrailerLen]byte {
	var b [TrailerLen]byte
	binary.LittleEndian.PutUint64(b[0:], t.IndexOffset)
	binary.LittleEndian.PutUint64(b[8:], t.IndexLength)
	binary.LittleEndian.PutUint64(b[16:], t.FileSize)
	binary.LittleEndian.PutUint32(b[24:], t.IndexCRC)
	binary.LittleEndian.PutUint32(b[trailerCRCOff:], CRC(b[:trailerCRCOff]))
	copy(b[32:], TrailerMagic)
	return b
}

// ParseTrailer decodes the trailer found at offset off of a file of the
// given size and checks that it describes that file: the index lies
// between the preamble and the trailer, ending where the trailer begins.
func ParseTrailer(b []byte, off int64, size int64) (Trailer, error) {
	var t Trailer
	if len(b) < TrailerLen {
		return t, Errorf(off, "file too short for the %d-byte trailer", TrailerLen)
	}
	if string(b[32:40]) != TrailerMagic {
		return t, Errorf(off+32, "bad trailer magic %q (truncated or not an nwc file)", b[32:40])
	}
	if want, got := binary.LittleEndian.Uint32(b[trailerCRCOff:]), CRC(b[:trailerCRCOff]); want != got {
		return t, &ChecksumError{What: "trailer", Off: off, Want: want, Got: got}
	}
	t.IndexOffset = binary.LittleEndian.Uint64(b[0:])
	t.IndexLength = binary.LittleEndian.Uint64(b[8:])
	t.FileSize = binary.LittleEndian.Uint64(b[16:])
	t.IndexCRC = binary.LittleEndian.Uint32(b[24:])
	if t.FileSize != uint64(size) {
		return t, Errorf(off+16, "trailer records a file of %d bytes, have %d (truncated or appended to)", t.FileSize, size)
	}
	if t.IndexOffset < PreambleLen || t.IndexOffset > uint64(off) || t.IndexLength > uint64(size) || t.IndexOffset+t.IndexLength != uint64(off) {
		return t, Errorf(off, "index [%#x, +%d) does not end at the trailer (%#x)", t.IndexOffset, t.IndexLength, off)
	}
	return t, nil
}
