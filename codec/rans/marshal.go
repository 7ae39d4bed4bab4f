package rans

import (
	"encoding/binary"
	"strconv"
)

// Serialized table layout:
//
//	byte      precision P, in [MinPrecision, MaxPrecision]
//	uvarint   N, the number of in-range values, in [1, MaxSymbols]
//	uvarint   Min, zigzag mapped
//	items     the N in-range frequencies in value order; an item is a
//	          uvarint frequency f, and if f == 0 a uvarint k follows and the
//	          item stands for k+1 zero frequencies. A zero item never
//	          directly follows another.
//
// The escape frequency is implied: 1<<P minus the in-range sum, and it must
// be at least 1. Every varint is minimal, so each table has exactly one
// serialization.

// AppendBinary appends the serialized table to b. It implements
// encoding.BinaryAppender.
func (t *Table) AppendBinary(b []byte) ([]byte, error) {
	n := t.Len()
	b = append(b, byte(t.precision))
	b = binary.AppendUvarint(b, uint64(n))
	b = appendZigzag(b, t.min)
	for i := 0; i < n; {
		f := t.freq[i]
		b = binary.AppendUvarint(b, uint64(f))
		i++
		if f == 0 {
			j := i
			for j < n && t.freq[j] == 0 {
				j++
			}
			b = binary.AppendUvarint(b, uint64(j-i))
			i = j
		}
	}
	return b, nil
}

// MarshalBinary returns the serialized table. It implements
// encoding.BinaryMarshaler.
func (t *Table) MarshalBinary() ([]byte, error) {
	return t.AppendBinary(nil)
}

// UnmarshalBinary replaces t with the table serialized in data, which must
// contain nothing else. It implements encoding.BinaryUnmarshaler and must not
// be called on a table that is in use.
func (t *Table) UnmarshalBinary(data []byte) error {
	u, n, err := ParseTable(data)
	if err != nil {
		return err
	}
	if n != len(data) {
		return tableErr(n, "trailing data after table")
	}
	*t = Table{min: u.min, precision: u.precision, freq: u.freq, enc: u.enc, cost: u.cost}
	return nil
}

// ParseTable parses a serialized table at the start of b and returns it with
// the number of bytes it occupies. All fields are validated; errors satisfy
// errors.Is(err, ErrTable) and carry the offending offset.
func ParseTable(b []byte) (*Table, int, error) {
	if len(b) == 0 {
		return nil, 0, tableErr(0, "empty input")
	}
	prec := uint(b[0])
	if prec < MinPrecision || prec > MaxPrecision {
		return nil, 0, tableErr(0, "precision "+strconv.Itoa(int(prec))+" out of range")
	}
	m := uint64(1) << prec
	off := 1
	un, off, err := readUvarint(b, off, MaxSymbols)
	if err != nil {
		return nil, off, err
	}
	if un == 0 {
		return nil, off, tableErr(off, "symbol count is zero")
	}
	n := int(un)
	zmin, next, err := readUvarint(b, off, 1<<32-1)
	if err != nil {
		return nil, next, err
	}
	min := int32(uint32(zmin)>>1) ^ -int32(zmin&1)
	if int64(min)+int64(n)-1 > 1<<31-1 {
		return nil, off, tableErr(off, "value range overflows int32")
	}
	off = next

	freqs := make([]uint32, n) // n <= MaxSymbols, checked above
	var sum uint64
	prevZero := false
	for i := 0; i < n; {
		start := off
		f, next, err := readUvarint(b, off, m-1)
		if err != nil {
			return nil, next, err
		}
		off = next
		if f != 0 {
			sum += f
			if sum >= m {
				return nil, start, tableErr(start, "frequencies leave no room for the escape")
			}
			freqs[i] = uint32(f)
			i++
			prevZero = false
			continue
		}
		if prevZero {
			return nil, start, tableErr(start, "split run of zero frequencies")
		}
		k, next, err := readUvarint(b, off, uint64(n-i-1))
		if err != nil {
			return nil, next, err
		}
		off = next
		i += int(k) + 1 // freqs is already zero
		prevZero = true
	}
	if sum == 0 {
		return nil, off, tableErr(off, "no in-range value has a nonzero frequency")
	}
	return newTable(min, freqs, uint32(m-sum), prec), off, nil
}

// readUvarint reads a minimal uvarint at b[off:] no larger than max and
// returns it with the offset after it.
func readUvarint(b []byte, off int, max uint64) (uint64, int, error) {
	u, k := binary.Uvarint(b[off:])
	switch {
	case k == 0:
		return 0, len(b), tableErr(len(b), "truncated")
	case k < 0:
		return 0, off, tableErr(off, "varint overflows")
	case k > 1 && b[off+k-1] == 0:
		return 0, off, tableErr(off, "non-minimal varint")
	case u > max:
		return 0, off, tableErr(off, "value "+strconv.FormatUint(u, 10)+" exceeds limit "+strconv.FormatUint(max, 10))
	}
	return u, off + k, nil
}
