// Package spec holds normative constants and simple reference decoders that
// the fast paths of the codecs are checked against.
//
// Everything here is written for clarity, not speed: one sample at a time,
// plain loops, every floating-point operation spelled out in the order the
// format prescribes. Tests of the optimized packages compare their output
// with these functions bit for bit; when the two disagree, this package and
// FORMAT.md are right. Each file is self-contained and documents the part of
// the format it implements.
package spec
