// Package spec is the reference decoder of the .nwc format, written from
// FORMAT.md alone: [Decode] checks every rule of the container (preamble,
// trailer, index, packing, checksums, limits) and decodes every tensor
// under its codec, and the normative arithmetic of the neural codec
// ([NWCReconstruct], [MLPForward]) lives here too.
//
// Everything here is written for clarity, not speed: one value at a time,
// plain loops, every floating-point operation spelled out in the order the
// format prescribes, and no use of the fast packages (format, reader,
// codec). Tests compare the fast path with this package bit for bit and
// error class for error class (package conformance); when the two
// disagree, this package and FORMAT.md are right. Each file documents the
// part of the format it implements.
package spec
