package rans

import (
	"encoding/binary"
	"strconv"
)

// Decode decodes exactly len(dst) symbols from src, which must hold exactly
// one stream produced by [Encode] with the same tables. Symbol i is decoded
// with tables[i%len(tables)].
//
// Malformed input yields an error satisfying errors.Is(err, ErrCorrupt):
// the stream must end exactly where the decoder stops, every lane must
// return to its initial state, and the escape stream must be well formed
// and fully consumed. Decode never allocates memory in proportion to values
// read from src. On error the contents of dst are unspecified.
//
// Decode is safe for concurrent use, including with shared tables.
func Decode(src []byte, tables []*Table, dst []int32) error {
	if err := checkTables(tables); err != nil && len(dst) != 0 {
		return err
	}
	var sd StreamDecoder
	if err := sd.start(src, len(dst)); err != nil || len(dst) == 0 {
		return err
	}
	if len(tables) == 1 {
		sd.setTable(tables[0])
		if err := sd.Next(dst); err != nil {
			return err
		}
	} else {
		pos, err := decodeN(src, sd.pos, &sd.x, tables, dst, &sd.es)
		if err != nil {
			return err
		}
		if sd.es.err != nil {
			return sd.es.err
		}
		sd.pos, sd.done = pos, len(dst)
	}
	return sd.Close()
}

// A StreamDecoder decodes one single-table stream of [Encode] in pieces,
// so that a caller can consume symbols while they are still in cache. It
// decodes exactly what [Decode] does, with the same checks; the zero
// value is ready for Reset. A StreamDecoder must not be used
// concurrently, but several may share a table.
type StreamDecoder struct {
	src     []byte
	pos     int // read position of the renormalization words
	x       [4]uint32
	es      escReader
	t       *Table
	d       *decTables
	sent    int32
	n, done int // symbols in the stream, decoded so far
	lanes   int
}

// Reset starts decoding src, a stream of exactly n symbols coded with t.
// Errors satisfy errors.Is(err, ErrCorrupt) (or ErrNoTables for a nil
// table).
func (sd *StreamDecoder) Reset(src []byte, t *Table, n int) error {
	if n != 0 {
		if err := checkTables([]*Table{t}); err != nil {
			return err
		}
	}
	if err := sd.start(src, n); err != nil {
		return err
	}
	if n != 0 {
		sd.setTable(t)
	}
	return nil
}

// start parses the stream's escape length and lane states.
func (sd *StreamDecoder) start(src []byte, n int) error {
	*sd = StreamDecoder{src: src, n: n}
	if n == 0 {
		if len(src) != 0 {
			return corruptErr(0, "data for an empty stream")
		}
		return nil
	}
	escLen, m := binary.Uvarint(src)
	if m <= 0 {
		if m == 0 {
			return corruptErr(0, "truncated escape length")
		}
		return corruptErr(0, "escape length overflows")
	}
	if m > 1 && src[m-1] == 0 {
		return corruptErr(0, "non-minimal escape length")
	}
	if escLen > uint64(len(src)-m) {
		return corruptErr(m, "escape stream of "+strconv.FormatUint(escLen, 10)+" bytes exceeds input")
	}
	sd.es = escReader{src: src[m : m+int(escLen)], off: m}
	pos := m + int(escLen)
	sd.lanes = min(n, 4)
	if len(src)-pos < 4*sd.lanes {
		return corruptErr(len(src), "truncated lane states")
	}
	sd.x = [4]uint32{ransL, ransL, ransL, ransL}
	for l := range sd.lanes {
		sd.x[l] = binary.LittleEndian.Uint32(src[pos:])
		if sd.x[l] < ransL {
			return corruptErr(pos, "lane state below normalization bound")
		}
		pos += 4
	}
	sd.pos = pos
	return nil
}

func (sd *StreamDecoder) setTable(t *Table) {
	sd.t, sd.d, sd.sent = t, t.decTable(), t.sentinel()
}

// Next decodes the next len(dst) symbols of the stream.
func (sd *StreamDecoder) Next(dst []int32) error {
	if len(dst) > sd.n-sd.done {
		return corruptErr(sd.pos, "more symbols wanted than the stream holds")
	}
	if len(dst) == 0 {
		return nil
	}
	d, p := sd.d, sd.pos
	i := 0
	// Symbol k of the stream is in lane k%4; decodeFast starts at lane 0.
	for ; i < len(dst) && (sd.done+i)&3 != 0; i++ {
		if err := sd.one(dst, i, &p); err != nil {
			return err
		}
	}
	if i < len(dst) {
		k, q := decodeFast(sd.src, p, &sd.x, d.slots, d.info, sd.t.precision, sd.sent, dst[i:], sd.t, &sd.es)
		if sd.es.err != nil {
			return sd.es.err
		}
		i, p = i+k, q
	}
	for ; i < len(dst); i++ {
		if err := sd.one(dst, i, &p); err != nil {
			return err
		}
	}
	sd.pos = p
	sd.done += len(dst)
	return nil
}

// one decodes dst[i], symbol done+i of the stream, reading words at *p.
func (sd *StreamDecoder) one(dst []int32, i int, p *int) error {
	v, q, err := decodeOne(sd.src, *p, &sd.x[(sd.done+i)&3], sd.d.slots, sd.d.info, sd.t.precision)
	if err != nil {
		return err
	}
	*p = q
	if v == sd.sent {
		if v, err = sd.es.read(sd.t); err != nil {
			return err
		}
	}
	dst[i] = v
	return nil
}

// Close checks that the whole stream was decoded and consumed exactly:
// no trailing data, every lane back to its initial state and the escape
// stream used up.
func (sd *StreamDecoder) Close() error {
	if sd.done != sd.n {
		return corruptErr(sd.pos, "stream closed after "+strconv.Itoa(sd.done)+" of "+strconv.Itoa(sd.n)+" symbols")
	}
	if sd.n == 0 {
		return nil
	}
	if sd.pos != len(sd.src) {
		return corruptErr(sd.pos, "trailing data after final renormalization")
	}
	for l := range sd.lanes {
		if sd.x[l] != ransL {
			return corruptErr(sd.pos, "lane "+strconv.Itoa(l)+" did not return to its initial state")
		}
	}
	if sd.es.p != len(sd.es.src) {
		return corruptErr(sd.es.off+sd.es.p, "unused escape data")
	}
	return nil
}

// decodeFast is the hot loop of StreamDecoder.Next. It decodes groups of four symbols
// while at least 8 bytes of input remain and returns the number of symbols
// decoded and the input position. Escapes are rare, so the only call is on
// their path, which keeps the lane states in registers.
func decodeFast(src []byte, p int, x *[4]uint32, slots []uint16, info []uint64, shift uint, sent int32, dst []int32, t *Table, es *escReader) (i, pos int) {
	mask := len(slots) - 1
	if mask < 0 {
		return 0, p // unreachable; lets the compiler drop bounds checks
	}
	shift &= 31
	x0, x1, x2, x3 := x[0], x[1], x[2], x[3]
	// Fast path: four symbols per iteration consume at most four words, so
	// one 8-byte load covers every renormalization of the group.
	for i+4 <= len(dst) && p+8 <= len(src) {
		w := binary.LittleEndian.Uint64(src[p : p+8])
		s0 := int(x0) & mask
		s1 := int(x1) & mask
		s2 := int(x2) & mask
		s3 := int(x3) & mask
		e0 := info[slots[s0]]
		e1 := info[slots[s1]]
		e2 := info[slots[s2]]
		e3 := info[slots[s3]]
		x0 = uint32(e0>>16)&0xffff*(x0>>shift) + uint32(s0) - uint32(e0)&0xffff
		x1 = uint32(e1>>16)&0xffff*(x1>>shift) + uint32(s1) - uint32(e1)&0xffff
		x2 = uint32(e2>>16)&0xffff*(x2>>shift) + uint32(s2) - uint32(e2)&0xffff
		x3 = uint32(e3>>16)&0xffff*(x3>>shift) + uint32(s3) - uint32(e3)&0xffff
		v0, v1, v2, v3 := int32(e0>>32), int32(e1>>32), int32(e2>>32), int32(e3>>32)
		g := dst[i : i+4 : i+4]
		g[0], g[1], g[2], g[3] = v0, v1, v2, v3
		if v0 == sent || v1 == sent || v2 == sent || v3 == sent {
			if !es.patch(g, sent, t) {
				break
			}
		}
		// A lane whose state fell below ransL takes the next word. Whether it
		// does is random, so the choice is arithmetic rather than a branch:
		// b is 1 for a refill and 0 otherwise.
		b := (uint64(x0) - ransL) >> 63
		x0 = x0<<(b<<4&31) | uint32(w)&uint32(-b)&0xffff
		w >>= b << 4 & 63
		k := b
		b = (uint64(x1) - ransL) >> 63
		x1 = x1<<(b<<4&31) | uint32(w)&uint32(-b)&0xffff
		w >>= b << 4 & 63
		k += b
		b = (uint64(x2) - ransL) >> 63
		x2 = x2<<(b<<4&31) | uint32(w)&uint32(-b)&0xffff
		w >>= b << 4 & 63
		k += b
		b = (uint64(x3) - ransL) >> 63
		x3 = x3<<(b<<4&31) | uint32(w)&uint32(-b)&0xffff
		k += b
		p += int(2 * k)
		i += 4
	}
	x[0], x[1], x[2], x[3] = x0, x1, x2, x3
	return i, p
}

// decodeOne decodes one symbol from state *x, refilling from src[p:], and
// returns the value and the new position.
func decodeOne(src []byte, p int, x *uint32, slots []uint16, info []uint64, shift uint) (int32, int, error) {
	xi := *x
	s := int(xi) & (len(slots) - 1)
	e := info[slots[s]]
	xi = uint32(e>>16)&0xffff*(xi>>(shift&31)) + uint32(s) - uint32(e)&0xffff
	if xi < ransL {
		if len(src)-p < 2 {
			return 0, p, corruptErr(len(src), "truncated renormalization word")
		}
		xi = xi<<16 | uint32(binary.LittleEndian.Uint16(src[p:]))
		p += 2
	}
	*x = xi
	return int32(e >> 32), p, nil
}

// decodeN decodes dst cycling through several tables.
func decodeN(src []byte, pos int, x *[4]uint32, tables []*Table, dst []int32, es *escReader) (int, error) {
	type lane struct {
		*decTables
		shift uint
		sent  int32
	}
	var buf [16]lane
	ls := buf[:0]
	if len(tables) > len(buf) {
		ls = make([]lane, 0, len(tables))
	}
	for _, t := range tables {
		ls = append(ls, lane{t.decTable(), t.precision, t.sentinel()})
	}
	j := 0
	for i := range dst {
		l := &ls[j]
		v, p, err := decodeOne(src, pos, &x[i&3], l.slots, l.info, l.shift)
		if err != nil {
			return p, err
		}
		pos = p
		if v == l.sent {
			if v, err = es.read(tables[j]); err != nil {
				return pos, err
			}
		}
		dst[i] = v
		if j++; j == len(ls) {
			j = 0
		}
	}
	return pos, nil
}

// escReader reads escaped values from the side stream.
type escReader struct {
	src []byte // the escape stream
	off int    // offset of src in the input, for error reports
	p   int    // read position in src
	err error  // first error, for callers that cannot return one
}

// read returns the next escaped value, which t must not code directly.
func (r *escReader) read(t *Table) (int32, error) {
	u, m := binary.Uvarint(r.src[r.p:])
	switch {
	case m == 0:
		return 0, corruptErr(r.off+r.p, "escape stream exhausted")
	case m < 0 || m > 5 || u > 1<<32-1:
		return 0, corruptErr(r.off+r.p, "escape value overflows int32")
	case m > 1 && r.src[r.p+m-1] == 0:
		return 0, corruptErr(r.off+r.p, "non-minimal escape value encoding")
	}
	v := int32(uint32(u)>>1) ^ -int32(u&1)
	if !t.enc[t.index(v)].esc {
		return 0, corruptErr(r.off+r.p, "escaped value "+strconv.FormatInt(int64(v), 10)+" is coded directly by its table")
	}
	r.p += m
	return v, nil
}

// patch replaces the sentinels in g with escaped values. It reports false
// and records the error in r.err on failure.
func (r *escReader) patch(g []int32, sent int32, t *Table) bool {
	for k, v := range g {
		if v != sent {
			continue
		}
		if g[k], r.err = r.read(t); r.err != nil {
			return false
		}
	}
	return true
}
