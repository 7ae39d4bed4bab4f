package spec

import (
	"encoding/binary"
	"fmt"
	"math"
	"unicode/utf8"
)

// msgMaxNesting is how deep a skipped value may nest (FORMAT.md §4): the
// skipped value itself is at depth 0, its elements at depth 1, and a value
// deeper than 32 is rejected.
const msgMaxNesting = 32

// maxKeyLen bounds a key of a map read by name (§5.4).
const maxKeyLen = 1 << 16

// A msgReader reads msgpack values (https://github.com/msgpack/msgpack/
// blob/master/spec.md) from a byte slice, one typed read at a time. Every
// length read from the data is checked against the bytes that remain
// before anything is allocated for it.
type msgReader struct {
	b []byte
	p int
}

func formatErr(f string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(f, args...))
}

func limitErr(f string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrLimit, fmt.Sprintf(f, args...))
}

func (m *msgReader) remaining() int { return len(m.b) - m.p }

func (m *msgReader) errorf(f string, args ...any) error {
	return formatErr("msgpack at byte %d: %s", m.p, fmt.Sprintf(f, args...))
}

// take returns the next n bytes.
func (m *msgReader) take(n uint64, what string) ([]byte, error) {
	if n > uint64(m.remaining()) {
		return nil, m.errorf("%s: %d bytes needed, %d remain", what, n, m.remaining())
	}
	s := m.b[m.p : m.p+int(n)]
	m.p += int(n)
	return s, nil
}

func (m *msgReader) peek(what string) (byte, error) {
	if m.remaining() == 0 {
		return 0, m.errorf("%s: no bytes left", what)
	}
	return m.b[m.p], nil
}

// be reads an n-byte big-endian unsigned integer.
func (m *msgReader) be(n int, what string) (uint64, error) {
	s, err := m.take(uint64(n), what)
	if err != nil {
		return 0, err
	}
	var v uint64
	for _, c := range s {
		v = v<<8 | uint64(c)
	}
	return v, nil
}

// mapLen reads a map header (fixmap 0x80–0x8f, map16 0xde, map32 0xdf).
// Each entry takes at least 2 bytes.
func (m *msgReader) mapLen(what string) (int, error) {
	c, err := m.peek(what)
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c >= 0x80 && c <= 0x8f:
		m.p++
		n = uint64(c & 0x0f)
	case c == 0xde || c == 0xdf:
		m.p++
		if n, err = m.be(map[byte]int{0xde: 2, 0xdf: 4}[c], what); err != nil {
			return 0, err
		}
	default:
		return 0, m.errorf("%s: want a map, have code %#02x", what, c)
	}
	if n > uint64(m.remaining()/2) {
		return 0, m.errorf("%s: map of %d entries cannot fit in %d bytes", what, n, m.remaining())
	}
	return int(n), nil
}

// arrayLen reads an array header (fixarray 0x90–0x9f, array16 0xdc,
// array32 0xdd) whose elements take at least minElem bytes each.
func (m *msgReader) arrayLen(what string, minElem int) (int, error) {
	return m.arrayLenMax(what, minElem, -1)
}

// arrayLenMax is arrayLen with a limit on the count, checked as soon as
// the header is read (FORMAT.md §6 step 6); max < 0 means none.
func (m *msgReader) arrayLenMax(what string, minElem, max int) (int, error) {
	c, err := m.peek(what)
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c >= 0x90 && c <= 0x9f:
		m.p++
		n = uint64(c & 0x0f)
	case c == 0xdc || c == 0xdd:
		m.p++
		if n, err = m.be(map[byte]int{0xdc: 2, 0xdd: 4}[c], what); err != nil {
			return 0, err
		}
	default:
		return 0, m.errorf("%s: want an array, have code %#02x", what, c)
	}
	if max >= 0 && n > uint64(max) {
		return 0, limitErr("%s of %d, limit %d", what, n, max)
	}
	if n > uint64(m.remaining()/minElem) {
		return 0, m.errorf("%s: array of %d elements cannot fit in %d bytes", what, n, m.remaining())
	}
	return int(n), nil
}

// str reads a string (fixstr 0xa0–0xbf, str8 0xd9, str16 0xda, str32
// 0xdb) that must be valid UTF-8. A string longer than maxLen (if > 0) is
// a limit error.
func (m *msgReader) str(what string, maxLen int) (string, error) {
	c, err := m.peek(what)
	if err != nil {
		return "", err
	}
	var n uint64
	switch {
	case c >= 0xa0 && c <= 0xbf:
		m.p++
		n = uint64(c & 0x1f)
	case c >= 0xd9 && c <= 0xdb:
		m.p++
		if n, err = m.be(1<<(c-0xd9), what); err != nil {
			return "", err
		}
	default:
		return "", m.errorf("%s: want a string, have code %#02x", what, c)
	}
	// The limit is checked at the header, before the bytes (§6 step 6).
	if maxLen > 0 && n > uint64(maxLen) {
		return "", limitErr("%s is %d bytes long, limit %d", what, n, maxLen)
	}
	s, err := m.take(n, what)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(s) {
		return "", m.errorf("%s is not valid UTF-8", what)
	}
	return string(s), nil
}

// isBin reports whether the next value is a bin (0xc4–0xc6).
func (m *msgReader) isBin() bool {
	return m.remaining() > 0 && m.b[m.p] >= 0xc4 && m.b[m.p] <= 0xc6
}

// bin reads a bin value; the result aliases the input.
func (m *msgReader) bin(what string) ([]byte, error) {
	c, err := m.peek(what)
	if err != nil {
		return nil, err
	}
	if c < 0xc4 || c > 0xc6 {
		return nil, m.errorf("%s: want bin, have code %#02x", what, c)
	}
	m.p++
	n, err := m.be(1<<(c-0xc4), what)
	if err != nil {
		return nil, err
	}
	return m.take(n, what)
}

// integer reads any msgpack integer as a sign and magnitude.
func (m *msgReader) integer(what string) (neg bool, mag uint64, err error) {
	c, err := m.peek(what)
	if err != nil {
		return false, 0, err
	}
	switch {
	case c <= 0x7f:
		m.p++
		return false, uint64(c), nil
	case c >= 0xe0:
		m.p++
		return true, uint64(-int64(int8(c))), nil
	case c >= 0xcc && c <= 0xcf: // uint8 … uint64
		m.p++
		v, err := m.be(1<<(c-0xcc), what)
		return false, v, err
	case c >= 0xd0 && c <= 0xd3: // int8 … int64
		m.p++
		n := 1 << (c - 0xd0)
		v, err := m.be(n, what)
		if err != nil {
			return false, 0, err
		}
		// Sign-extend the n-byte two's complement value.
		s := int64(v<<(64-8*n)) >> (64 - 8*n)
		if s < 0 {
			return true, uint64(-s), nil // -MinInt64 wraps to 2^63, its magnitude
		}
		return false, uint64(s), nil
	}
	return false, 0, m.errorf("%s: want an integer, have code %#02x", what, c)
}

// uint reads a non-negative integer in any integer encoding.
func (m *msgReader) uint(what string) (uint64, error) {
	neg, v, err := m.integer(what)
	if err != nil {
		return 0, err
	}
	if neg {
		return 0, m.errorf("%s is negative", what)
	}
	return v, nil
}

// boolean reads true (0xc3) or false (0xc2).
func (m *msgReader) boolean(what string) (bool, error) {
	c, err := m.peek(what)
	if err != nil {
		return false, err
	}
	if c != 0xc2 && c != 0xc3 {
		return false, m.errorf("%s: want a boolean, have code %#02x", what, c)
	}
	m.p++
	return c == 0xc3, nil
}

// number reads any msgpack number (float32, float64 or integer) as a
// float64: float32 widens exactly, integers convert rounding to nearest.
func (m *msgReader) number(what string) (float64, error) {
	c, err := m.peek(what)
	if err != nil {
		return 0, err
	}
	switch c {
	case 0xca:
		m.p++
		v, err := m.be(4, what)
		return float64(math.Float32frombits(uint32(v))), err
	case 0xcb:
		m.p++
		v, err := m.be(8, what)
		return math.Float64frombits(v), err
	}
	// An integer counts only when float64 holds it exactly.
	neg, v, err := m.integer(what)
	if err != nil {
		return 0, err
	}
	f := float64(v)
	if f >= 1<<64 || uint64(f) != v {
		return 0, m.errorf("%s: integer %d is not exactly a float64", what, v)
	}
	if neg {
		return -f, nil
	}
	return f, nil
}

// skip skips one value of any type at the given nesting depth.
func (m *msgReader) skip(what string, depth int) error {
	if depth > msgMaxNesting {
		return m.errorf("%s nests deeper than %d levels", what, msgMaxNesting)
	}
	c, err := m.peek(what)
	if err != nil {
		return err
	}
	// Fixed-size values: the code byte and a payload of known length.
	fixed := map[byte]uint64{0xc0: 0, 0xc2: 0, 0xc3: 0, 0xca: 4, 0xcb: 8,
		0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8, 0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8,
		0xd4: 2, 0xd5: 3, 0xd6: 5, 0xd7: 9, 0xd8: 17} // fixext: type byte + data
	switch {
	case c <= 0x7f || c >= 0xe0:
		m.p++
		return nil
	case c >= 0x80 && c <= 0x8f, c == 0xde, c == 0xdf:
		n, err := m.mapLen(what)
		if err != nil {
			return err
		}
		for i := 0; i < 2*n; i++ {
			if err := m.skip(what, depth+1); err != nil {
				return err
			}
		}
		return nil
	case c >= 0x90 && c <= 0x9f, c == 0xdc, c == 0xdd:
		n, err := m.arrayLen(what, 1)
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := m.skip(what, depth+1); err != nil {
				return err
			}
		}
		return nil
	case c >= 0xa0 && c <= 0xbf:
		m.p++
		_, err := m.take(uint64(c&0x1f), what)
		return err
	case c == 0xc1:
		return m.errorf("%s: invalid code 0xc1", what)
	case c >= 0xc4 && c <= 0xc6: // bin
		_, err := m.bin(what)
		return err
	case c >= 0xc7 && c <= 0xc9: // ext8/16/32: length, type byte, data
		m.p++
		n, err := m.be(1<<(c-0xc7), what)
		if err != nil {
			return err
		}
		_, err = m.take(n+1, what)
		return err
	case c >= 0xd9 && c <= 0xdb: // str8/16/32, not checked for UTF-8 when skipped
		m.p++
		n, err := m.be(1<<(c-0xd9), what)
		if err != nil {
			return err
		}
		_, err = m.take(n, what)
		return err
	}
	m.p++
	_, err = m.take(fixed[c], what)
	return err
}

// raw reads one complete value and returns its encoding.
func (m *msgReader) raw(what string) ([]byte, error) {
	start := m.p
	if err := m.skip(what, 0); err != nil {
		return nil, err
	}
	return m.b[start:m.p:m.p], nil
}

// mapKeys reads a map with string keys, calling fn for each key with the
// reader at its value. A repeated key is an error.
func (m *msgReader) mapKeys(what string, fn func(key string) error) error {
	n, err := m.mapLen(what)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for range n {
		k, err := m.str(what+" key", maxKeyLen)
		if err != nil {
			return err
		}
		if seen[k] {
			return m.errorf("%s: duplicate key %q", what, k)
		}
		seen[k] = true
		if err := fn(k); err != nil {
			return err
		}
	}
	return nil
}

// uvarint reads a minimal LEB128 unsigned integer (FORMAT.md §7.2) from
// b: the value and the bytes used, or used ≤ 0 when b holds no valid one
// (truncated, over 64 bits, or not in its shortest form).
func uvarint(b []byte) (v uint64, used int) {
	for i := 0; i < len(b) && i < binary.MaxVarintLen64; i++ {
		c := b[i]
		if i == binary.MaxVarintLen64-1 && c > 1 {
			return 0, -1 // above 2^64 − 1
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			if i > 0 && c == 0 {
				return 0, -1 // a longer encoding than needed
			}
			return v, i + 1
		}
	}
	return 0, 0
}
