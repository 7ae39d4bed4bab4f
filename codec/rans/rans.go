// Package rans implements an exact, table-driven range asymmetric numeral
// system (rANS) entropy coder for streams of int32 symbols.
//
// Probabilities are integer frequency tables summing to 1<<P (see [Table]),
// so encoding and decoding use integer arithmetic only and produce the same
// bytes on every platform. A table covers a contiguous range of values plus
// an escape symbol; any int32 outside the range (or inside it with frequency
// zero) is coded as the escape symbol followed by the value in a side stream,
// so every stream is codable with every table.
//
// # Stream format
//
// [Encode] produces, for n > 0 symbols:
//
//	uvarint   length E of the escape stream
//	E bytes   escape stream: one zigzag uvarint per escaped symbol, in order
//	4*k bytes final encoder states of lanes 0..k-1 (k = min(n, 4)), uint32 LE
//	rest      renormalization words, uint16 LE, in decoding order
//
// Symbol i is coded with tables[i%len(tables)] in interleaved lane i%4. The
// coder uses 32-bit states in [1<<16, 1<<32) and 16-bit renormalization,
// the layout described by Fabian Giesen's ryg_rans. Zero symbols encode to
// zero bytes. The stream does not record its own length or symbol count:
// the caller frames it and passes the exact count to [Decode].
package rans

import (
	"errors"
	"strconv"
)

const (
	// MinPrecision and MaxPrecision bound the table precision P: frequencies
	// sum to 1<<P. Below 10 bits the quantization loss is large; above 16 a
	// frequency no longer fits the 16-bit fields of the decoding tables.
	MinPrecision = 10
	MaxPrecision = 16

	// DefaultPrecision trades decoding-table size (cache footprint) against
	// the coding loss of coarse frequencies.
	DefaultPrecision = 14

	// MaxSymbols is the largest number of in-range values a table may cover.
	MaxSymbols = 4096
)

// ransL is the lower bound of the normalized state interval [ransL, ransL<<16).
const ransL = 1 << 16

var (
	// ErrTable reports an invalid frequency table, either passed to a
	// constructor or read by [ParseTable].
	ErrTable = errors.New("rans: invalid table")

	// ErrCorrupt reports an encoded stream that is malformed or truncated.
	// Errors returned by [Decode] for bad input satisfy errors.Is(err, ErrCorrupt).
	ErrCorrupt = errors.New("rans: corrupt stream")

	// ErrNoTables reports a call that codes symbols without any table.
	ErrNoTables = errors.New("rans: no tables")
)

// A TableError describes why a table was rejected.
type TableError struct {
	Offset int    // byte offset in the serialized table, or -1 if not parsing
	Reason string // human-readable cause
}

func (e *TableError) Error() string {
	if e.Offset < 0 {
		return "rans: invalid table: " + e.Reason
	}
	return "rans: invalid table at offset " + strconv.Itoa(e.Offset) + ": " + e.Reason
}

// Is reports whether target is [ErrTable], so callers can test the class of
// failure without inspecting the reason.
func (e *TableError) Is(target error) bool { return target == ErrTable }

// A CorruptError describes where and why an encoded stream was rejected.
type CorruptError struct {
	Offset int    // byte offset in the stream at which the problem was found
	Reason string // human-readable cause
}

func (e *CorruptError) Error() string {
	return "rans: corrupt stream at offset " + strconv.Itoa(e.Offset) + ": " + e.Reason
}

// Is reports whether target is [ErrCorrupt].
func (e *CorruptError) Is(target error) bool { return target == ErrCorrupt }

func tableErr(off int, reason string) error   { return &TableError{Offset: off, Reason: reason} }
func corruptErr(off int, reason string) error { return &CorruptError{Offset: off, Reason: reason} }
