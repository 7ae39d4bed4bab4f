package rans

import (
	"encoding/binary"
	"errors"
	"slices"
)

// errNilTable is returned when a tables slice holds a nil entry; it is a
// programming error rather than bad input, so it has no exported sentinel.
var errNilTable = errors.New("rans: nil table")

// Encode appends the rANS coding of syms to dst and returns the extended
// buffer. Symbol i is coded with tables[i%len(tables)]; values a table does
// not cover are escaped (see the package documentation for the format).
// Encoding zero symbols appends nothing. The output depends only on syms and
// the table frequencies.
func Encode(dst []byte, syms []int32, tables []*Table) ([]byte, error) {
	n := len(syms)
	if n == 0 {
		return dst, nil
	}
	if err := checkTables(tables); err != nil {
		return dst, err
	}

	// The escape side stream is written in symbol order, so it is produced
	// by a forward pass before the (backward) rANS pass.
	var esc []byte
	k := len(tables)
	j := 0
	for _, v := range syms {
		t := tables[j]
		if t.enc[t.index(v)].esc {
			esc = appendZigzag(esc, v)
		}
		if j++; j == k {
			j = 0
		}
	}
	dst = binary.AppendUvarint(dst, uint64(len(esc)))
	dst = append(dst, esc...)

	// rANS emits words last-symbol-first; they are written downwards from the
	// end of a worst-case reservation (one word per symbol plus the final
	// states) and then moved into place. The reservation cannot overflow:
	// syms itself occupies 4*n bytes.
	body := len(dst)
	need := 4*4 + 2*n
	dst = slices.Grow(dst, need)[:body+need]
	buf := dst[body:]
	var x [4]uint32
	var p int
	if k == 1 {
		x, p = encode1(buf, syms, tables[0])
	} else {
		x, p = encodeN(buf, syms, tables)
	}
	for l := min(n, 4) - 1; l >= 0; l-- {
		p -= 4
		binary.LittleEndian.PutUint32(buf[p:], x[l])
	}
	m := copy(buf, buf[p:])
	return dst[:body+m], nil
}

func checkTables(tables []*Table) error {
	if len(tables) == 0 {
		return ErrNoTables
	}
	for _, t := range tables {
		if t == nil {
			return errNilTable
		}
	}
	return nil
}

// encPut encodes one symbol into state x, writing at most one word below
// buf[p]. One word always suffices: x < 1<<32 gives x>>16 < 1<<16 <= xmax.
func encPut(buf []byte, p int, x uint32, s *encSym, precision uint) (uint32, int) {
	if x >= s.xmax {
		p -= 2
		buf[p] = byte(x)
		buf[p+1] = byte(x >> 8)
		x >>= 16
	}
	return (x/s.freq)<<precision + x%s.freq + s.cum, p
}

// encode1 runs the backward rANS pass for a single table. It returns the
// final lane states and the index in buf of the first written byte.
func encode1(buf []byte, syms []int32, t *Table) ([4]uint32, int) {
	x := [4]uint32{ransL, ransL, ransL, ransL}
	p := len(buf)
	prec := t.precision
	enc := t.enc
	i := len(syms) - 1
	for ; i >= 0 && i&3 != 3; i-- {
		x[i&3], p = encPut(buf, p, x[i&3], &enc[t.index(syms[i])], prec)
	}
	// Full groups of four, lanes in descending order.
	x0, x1, x2, x3 := x[0], x[1], x[2], x[3]
	for ; i >= 3; i -= 4 {
		g := syms[i-3 : i+1 : i+1]
		x3, p = encPut(buf, p, x3, &enc[t.index(g[3])], prec)
		x2, p = encPut(buf, p, x2, &enc[t.index(g[2])], prec)
		x1, p = encPut(buf, p, x1, &enc[t.index(g[1])], prec)
		x0, p = encPut(buf, p, x0, &enc[t.index(g[0])], prec)
	}
	return [4]uint32{x0, x1, x2, x3}, p
}

// encodeN runs the backward rANS pass cycling through several tables.
func encodeN(buf []byte, syms []int32, tables []*Table) ([4]uint32, int) {
	x := [4]uint32{ransL, ransL, ransL, ransL}
	p := len(buf)
	k := len(tables)
	j := (len(syms) - 1) % k
	for i := len(syms) - 1; i >= 0; i-- {
		t := tables[j]
		x[i&3], p = encPut(buf, p, x[i&3], &t.enc[t.index(syms[i])], t.precision)
		if j == 0 {
			j = k
		}
		j--
	}
	return x, p
}

// appendZigzag appends v as a zigzag-mapped uvarint (at most 5 bytes).
func appendZigzag(b []byte, v int32) []byte {
	u := uint32(v<<1) ^ uint32(v>>31)
	return binary.AppendUvarint(b, uint64(u))
}
