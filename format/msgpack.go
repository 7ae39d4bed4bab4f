package format

import (
	"bytes"
	"errors"
	"io"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// maxNesting bounds how deep unknown index values may nest before a reader
// gives up, so that skipping a hostile value cannot exhaust the stack.
const maxNesting = 32

// A MsgReader reads msgpack values from a byte slice with strict typing,
// offsets in errors and no allocation driven by lengths in the data: every
// count is checked against the bytes that remain before it is used. Codecs
// use it to parse their parameter maps.
type MsgReader struct {
	b    []byte
	r    *bytes.Reader
	d    *msgpack.Decoder
	base int64 // file offset of b[0], for error messages
}

// NewMsgReader returns a reader over b, whose first byte is at file offset
// base (use -1 when b is not part of a file).
func NewMsgReader(b []byte, base int64) *MsgReader {
	r := bytes.NewReader(b)
	return &MsgReader{b: b, r: r, d: msgpack.NewDecoder(r), base: base}
}

// Pos returns the number of bytes consumed.
func (m *MsgReader) Pos() int { return len(m.b) - m.r.Len() }

// Remaining returns the number of unread bytes.
func (m *MsgReader) Remaining() int { return m.r.Len() }

// Off returns the file offset of the next byte, or -1 if unknown.
func (m *MsgReader) Off() int64 {
	if m.base < 0 {
		return -1
	}
	return m.base + int64(m.Pos())
}

// Errorf returns a *FormatError at the current position.
func (m *MsgReader) Errorf(format string, args ...any) error {
	return Errorf(m.Off(), format, args...)
}

func (m *MsgReader) wrap(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return m.Errorf("truncated msgpack reading %s", what)
	}
	return m.Errorf("reading %s: %v", what, err)
}

func (m *MsgReader) peek(what string) (byte, error) {
	c, err := m.d.PeekCode()
	if err != nil {
		return 0, m.wrap(err, what)
	}
	return c, nil
}

// MapLen reads a map header and checks that n key/value pairs can fit in
// the remaining bytes.
func (m *MsgReader) MapLen(what string) (int, error) {
	c, err := m.peek(what)
	if err != nil {
		return 0, err
	}
	if !(c >= msgpcode.FixedMapLow && c <= msgpcode.FixedMapHigh) && c != msgpcode.Map16 && c != msgpcode.Map32 {
		return 0, m.Errorf("%s: want a map, have msgpack code %#02x", what, c)
	}
	n, err := m.d.DecodeMapLen()
	if err != nil {
		return 0, m.wrap(err, what)
	}
	if n < 0 || n > m.Remaining()/2 {
		return 0, m.Errorf("%s: map of %d entries cannot fit in %d bytes", what, n, m.Remaining())
	}
	return n, nil
}

// ArrayLen reads an array header and checks that n elements of at least
// minElem bytes each fit in the remaining bytes.
func (m *MsgReader) ArrayLen(what string, minElem int) (int, error) {
	return m.ArrayLenMax(what, minElem, -1)
}

// ArrayLenMax is ArrayLen that first checks n against max (unless max < 0),
// returning a *LimitError about what: FORMAT.md §6 classifies a count over
// its limit as a limit error however few bytes follow it.
func (m *MsgReader) ArrayLenMax(what string, minElem, max int) (int, error) {
	c, err := m.peek(what)
	if err != nil {
		return 0, err
	}
	if !(c >= msgpcode.FixedArrayLow && c <= msgpcode.FixedArrayHigh) && c != msgpcode.Array16 && c != msgpcode.Array32 {
		return 0, m.Errorf("%s: want an array, have msgpack code %#02x", what, c)
	}
	n, err := m.d.DecodeArrayLen()
	if err != nil {
		return 0, m.wrap(err, what)
	}
	if max >= 0 && n > max {
		return 0, &LimitError{What: what, Value: uint64(n), Limit: uint64(max)}
	}
	if minElem < 1 {
		minElem = 1
	}
	if n < 0 || n > m.Remaining()/minElem {
		return 0, m.Errorf("%s: array of %d elements cannot fit in %d bytes", what, n, m.Remaining())
	}
	return n, nil
}

// String reads a UTF-8 string of at most maxLen bytes (no bound if maxLen
// is 0). The length is checked against maxLen as soon as the header is
// read, before the bytes that remain (FORMAT.md §6: a length over its
// limit is a limit error however few bytes follow it).
func (m *MsgReader) String(what string, maxLen int) (string, error) {
	c, err := m.peek(what)
	if err != nil {
		return "", err
	}
	if !(c >= msgpcode.FixedStrLow && c <= msgpcode.FixedStrHigh) && c != msgpcode.Str8 && c != msgpcode.Str16 && c != msgpcode.Str32 {
		return "", m.Errorf("%s: want a string, have msgpack code %#02x", what, c)
	}
	off := m.Off()
	n, err := m.d.DecodeBytesLen()
	if err != nil {
		return "", m.wrap(err, what)
	}
	if maxLen > 0 && n > maxLen {
		return "", &LimitError{What: what + " length", Value: uint64(n), Limit: uint64(maxLen)}
	}
	if n < 0 || n > m.Remaining() {
		return "", m.Errorf("truncated msgpack reading %s: %d bytes claimed, %d remain", what, n, m.Remaining())
	}
	start := m.Pos()
	if _, err := m.r.Seek(int64(n), io.SeekCurrent); err != nil {
		return "", m.wrap(err, what)
	}
	s := string(m.b[start : start+n])
	if !utf8.ValidString(s) {
		return "", Errorf(off, "%s is not valid UTF-8", what)
	}
	return s, nil
}

// Bytes reads a bin value; the result aliases the input.
func (m *MsgReader) Bytes(what string) ([]byte, error) {
	c, err := m.peek(what)
	if err != nil {
		return nil, err
	}
	if c != msgpcode.Bin8 && c != msgpcode.Bin16 && c != msgpcode.Bin32 {
		return nil, m.Errorf("%s: want bin, have msgpack code %#02x", what, c)
	}
	n, err := m.d.DecodeBytesLen()
	if err != nil {
		return nil, m.wrap(err, what)
	}
	if n < 0 || n > m.Remaining() {
		return nil, m.Errorf("%s: %d bytes claimed, %d remain", what, n, m.Remaining())
	}
	start := m.Pos()
	if _, err := m.r.Seek(int64(n), io.SeekCurrent); err != nil {
		return nil, m.wrap(err, what)
	}
	return m.b[start : start+n : start+n], nil
}

// Uint reads a non-negative integer.
func (m *MsgReader) Uint(what string) (uint64, error) {
	c, err := m.peek(what)
	if err != nil {
		return 0, err
	}
	switch {
	case c <= msgpcode.PosFixedNumHigh, c == msgpcode.Uint8, c == msgpcode.Uint16, c == msgpcode.Uint32, c == msgpcode.Uint64:
		v, err := m.d.DecodeUint64()
		if err != nil {
			return 0, m.wrap(err, what)
		}
		return v, nil
	case c == msgpcode.Int8, c == msgpcode.Int16, c == msgpcode.Int32, c == msgpcode.Int64:
		v, err := m.d.DecodeInt64()
		if err != nil {
			return 0, m.wrap(err, what)
		}
		if v < 0 {
			return 0, m.Errorf("%s is negative (%d)", what, v)
		}
		return uint64(v), nil
	}
	return 0, m.Errorf("%s: want a non-negative integer, have msgpack code %#02x", what, c)
}

// Int reads a signed integer.
func (m *MsgReader) Int(what string) (int64, error) {
	c, err := m.peek(what)
	if err != nil {
		return 0, err
	}
	if c == msgpcode.Uint64 {
		v, err := m.Uint(what)
		if err != nil {
			return 0, err
		}
		if v > 1<<63-1 {
			return 0, m.Errorf("%s overflows int64", what)
		}
		return int64(v), nil
	}
	if !msgpcode.IsFixedNum(c) && !(c >= msgpcode.Uint8 && c <= msgpcode.Int64) {
		return 0, m.Errorf("%s: want an integer, have msgpack code %#02x", what, c)
	}
	v, err := m.d.DecodeInt64()
	if err != nil {
		return 0, m.wrap(err, what)
	}
	return v, nil
}

// Float reads a float32 or float64 value. Integers are accepted too, but
// only when float64 holds them exactly: a value that rounds is not the
// number the file states.
func (m *MsgReader) Float(what string) (float64, error) {
	c, err := m.peek(what)
	if err != nil {
		return 0, err
	}
	if msgpcode.IsFixedNum(c) || (c >= msgpcode.Uint8 && c <= msgpcode.Int64) {
		var f float64
		if c == msgpcode.Uint64 {
			u, err := m.Uint(what)
			if err != nil {
				return 0, err
			}
			if f = float64(u); f >= 1<<64 || uint64(f) != u {
				return 0, m.Errorf("%s: integer %d is not exactly a float64", what, u)
			}
			return f, nil
		}
		v, err := m.Int(what)
		if err != nil {
			return 0, err
		}
		if f = float64(v); f >= 1<<63 || int64(f) != v {
			return 0, m.Errorf("%s: integer %d is not exactly a float64", what, v)
		}
		return f, nil
	}
	if c != msgpcode.Float && c != msgpcode.Double {
		return 0, m.Errorf("%s: want a number, have msgpack code %#02x", what, c)
	}
	v, err := m.d.DecodeFloat64()
	if err != nil {
		return 0, m.wrap(err, what)
	}
	return v, nil
}

// Bool reads a boolean.
func (m *MsgReader) Bool(what string) (bool, error) {
	c, err := m.peek(what)
	if err != nil {
		return false, err
	}
	if c != msgpcode.True && c != msgpcode.False {
		return false, m.Errorf("%s: want a boolean, have msgpack code %#02x", what, c)
	}
	v, err := m.d.DecodeBool()
	if err != nil {
		return false, m.wrap(err, what)
	}
	return v, nil
}

// Raw reads one complete value of any type and returns its encoding, which
// aliases the input.
func (m *MsgReader) Raw(what string) ([]byte, error) {
	start := m.Pos()
	if err := m.Skip(what); err != nil {
		return nil, err
	}
	return m.b[start:m.Pos():m.Pos()], nil
}

// Skip skips one value of any type, bounding the nesting depth.
func (m *MsgReader) Skip(what string) error { return m.skip(what, 0) }

func (m *MsgReader) skip(what string, depth int) error {
	if depth > maxNesting {
		return m.Errorf("%s nests deeper than %d levels", what, maxNesting)
	}
	c, err := m.peek(what)
	if err != nil {
		return err
	}
	switch {
	case c >= msgpcode.FixedArrayLow && c <= msgpcode.FixedArrayHigh, c == msgpcode.Array16, c == msgpcode.Array32:
		n, err := m.ArrayLen(what, 1)
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			if err := m.skip(what, depth+1); err != nil {
				return err
			}
		}
		return nil
	case c >= msgpcode.FixedMapLow && c <= msgpcode.FixedMapHigh, c == msgpcode.Map16, c == msgpcode.Map32:
		n, err := m.MapLen(what)
		if err != nil {
			return err
		}
		for i := 0; i < 2*n; i++ {
			if err := m.skip(what, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if c == 0xc1 { // the one code msgpack never uses
		return m.Errorf("%s: invalid msgpack code 0xc1", what)
	}
	if err := m.d.Skip(); err != nil {
		return m.wrap(err, what)
	}
	return nil
}

// MapKeys iterates over a map whose keys are strings, calling fn for each
// key with the reader positioned at the value. fn must consume the value.
// Duplicate keys are an error.
func (m *MsgReader) MapKeys(what string, fn func(key string) error) error {
	n, err := m.MapLen(what)
	if err != nil {
		return err
	}
	seen := make(map[string]struct{}, min(n, 64))
	for i := 0; i < n; i++ {
		off := m.Off()
		k, err := m.String(what+" key", MaxKeyLen)
		if err != nil {
			return err
		}
		if _, dup := seen[k]; dup {
			return Errorf(off, "%s: duplicate key %q", what, k)
		}
		seen[k] = struct{}{}
		if err := fn(k); err != nil {
			return err
		}
	}
	return nil
}

// A MsgWriter appends msgpack values to a buffer. Writes to a bytes.Buffer
// cannot fail, so its methods return nothing.
type MsgWriter struct {
	buf bytes.Buffer
	e   *msgpack.Encoder
}

// NewMsgWriter returns an empty writer.
func NewMsgWriter() *MsgWriter {
	w := &MsgWriter{}
	w.e = msgpack.NewEncoder(&w.buf)
	return w
}

// Bytes returns the encoded values.
func (w *MsgWriter) Bytes() []byte { return w.buf.Bytes() }

// MapLen writes a map header of n pairs.
func (w *MsgWriter) MapLen(n int) { _ = w.e.EncodeMapLen(n) }

// ArrayLen writes an array header of n elements.
func (w *MsgWriter) ArrayLen(n int) { _ = w.e.EncodeArrayLen(n) }

// String writes a string.
func (w *MsgWriter) String(s string) { _ = w.e.EncodeString(s) }

// Bin writes a bin value.
func (w *MsgWriter) Bin(b []byte) { _ = w.e.EncodeBytes(b) }

// Uint writes a non-negative integer in its shortest encoding.
func (w *MsgWriter) Uint(v uint64) { _ = w.e.EncodeUint(v) }

// Int writes an integer in its shortest encoding.
func (w *MsgWriter) Int(v int64) { _ = w.e.EncodeInt(v) }

// Float64 writes a float64.
func (w *MsgWriter) Float64(v float64) { _ = w.e.EncodeFloat64(v) }

// Bool writes a boolean.
func (w *MsgWriter) Bool(v bool) { _ = w.e.EncodeBool(v) }

// Raw appends an already encoded value.
func (w *MsgWriter) Raw(b []byte) { w.buf.Write(b) }
