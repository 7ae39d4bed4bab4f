// Package format defines the on-disk structures of the .nwc container: the
// preamble, the trailer, the msgpack index, the limits a reader enforces and
// the typed errors every nwc package returns for bad input.
//
// The byte-exact specification is FORMAT.md at the root of the module. This
// package reads version 1.x files (any minor) and writes version 1.0.
//
// A file is laid out as
//
//	preamble (32 bytes) | padding | section | padding | section ... | padding | index | trailer (40 bytes)
//
// where every section and the index start at a multiple of the file's declared
// alignment and every padding byte is zero.
package format

// Magic starts every .nwc file. Like PNG's signature it has a high-bit byte
// and a CR LF / ^Z / LF sequence so that text-mode transfers are detected.
const Magic = "\x89NWC\r\n\x1a\n"

// TrailerMagic ends every .nwc file.
const TrailerMagic = "NWCINDEX"

// Versions written by this package. A reader accepts any minor version of
// the major version it knows: a minor bump only adds optional index fields,
// which older readers skip.
const (
	VersionMajor = 1
	VersionMinor = 0
)

// On-disk sizes.
const (
	PreambleLen = 32 // magic(8) major(2) minor(2) alignLog2(1) reserved(15) crc32c(4)
	TrailerLen  = 40 // indexOffset(8) indexLength(8) fileSize(8) indexCRC(4) trailerCRC(4) TrailerMagic(8)

	preambleCRCOff = 28 // the preamble's CRC32C covers bytes [0, 28)
	trailerCRCOff  = 28 // the trailer's CRC32C covers bytes [0, 28) of the trailer
)

// Alignment bounds, as log2 of the byte alignment of every data section.
const (
	// MinAlignLog2 allows packed files (1-byte alignment): sections that
	// are always decoded, never mapped in place, gain nothing from
	// padding, which on a small lossy model is several hundredths of a
	// bit per weight.
	MinAlignLog2     = 0
	MaxAlignLog2     = 24 // 16 MiB: larger alignments only waste space
	DefaultAlignLog2 = 6  // 64 bytes: one cache line, enough for SIMD loads of raw tensors
)

// MaxGroupElements bounds the elements of one chunk group, so that decoding a
// group never needs more than MaxGroupElements × 8 bytes of output.
const MaxGroupElements = 1 << 28
