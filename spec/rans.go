package spec

import "encoding/binary"

// rANS streams and frequency tables (FORMAT.md Appendix B).

// A ransTable is a frequency table (B.1): symbol k < N is the value
// Min + k, symbol N the escape.
type ransTable struct {
	prec uint     // P
	min  int32    // Min
	freq []uint32 // f_0 … f_N (the escape last)
	cum  []uint32 // cum_0 … cum_N
}

// direct reports whether the table codes v directly: in range with a
// nonzero frequency.
func (t *ransTable) direct(v int32) bool {
	k := int64(v) - int64(t.min)
	n := int64(len(t.freq) - 1)
	return k >= 0 && k < n && t.freq[k] != 0
}

// parseRANSTable parses one serialized table (B.2) from the start of b and
// returns it and the bytes it takes.
func parseRANSTable(b []byte) (*ransTable, int, error) {
	if len(b) == 0 {
		return nil, 0, formatErr("rANS table: empty")
	}
	prec := uint(b[0])
	if prec < 10 || prec > 16 {
		return nil, 0, formatErr("rANS table: precision %d", prec)
	}
	total := uint64(1) << prec
	p := 1
	read := func(limit uint64, what string) (uint64, error) {
		v, used := uvarint(b[p:])
		if used <= 0 {
			return 0, formatErr("rANS table: bad uvarint for %s", what)
		}
		if v > limit {
			return 0, formatErr("rANS table: %s %d above %d", what, v, limit)
		}
		p += used
		return v, nil
	}
	n64, err := read(4096, "N")
	if err != nil {
		return nil, 0, err
	}
	if n64 == 0 {
		return nil, 0, formatErr("rANS table: N is 0")
	}
	n := int(n64)
	z, err := read(1<<32-1, "zigzag(Min)")
	if err != nil {
		return nil, 0, err
	}
	min := int32(uint32(z)>>1) ^ -int32(uint32(z)&1)
	if int64(min)+int64(n)-1 > 1<<31-1 {
		return nil, 0, formatErr("rANS table: range overflows int32")
	}
	t := &ransTable{prec: prec, min: min, freq: make([]uint32, n+1)}
	var sum uint64
	prevRun := false
	for i := 0; i < n; {
		f, err := read(total-1, "frequency")
		if err != nil {
			return nil, 0, err
		}
		if f > 0 {
			sum += f
			if sum > total-1 {
				return nil, 0, formatErr("rANS table: frequencies leave no room for the escape")
			}
			t.freq[i] = uint32(f)
			i++
			prevRun = false
			continue
		}
		if prevRun {
			return nil, 0, formatErr("rANS table: a zero run follows a zero run")
		}
		k, err := read(uint64(n-i-1), "zero run")
		if err != nil {
			return nil, 0, err
		}
		i += int(k) + 1
		prevRun = true
	}
	if sum == 0 {
		return nil, 0, formatErr("rANS table: no in-range value has a nonzero frequency")
	}
	t.freq[n] = uint32(total - sum)
	t.cum = make([]uint32, n+1)
	for k := 1; k <= n; k++ {
		t.cum[k] = t.cum[k-1] + t.freq[k-1]
	}
	return t, p, nil
}

// ransDecode decodes a stream of n symbols coded with the tables (B.3,
// B.4), symbol i with tables[i mod len(tables)].
func ransDecode(src []byte, tables []*ransTable, n int) ([]int32, error) {
	if n == 0 {
		if len(src) != 0 {
			return nil, formatErr("rANS: bytes in a stream of no symbols")
		}
		return []int32{}, nil
	}
	e, used := uvarint(src)
	if used <= 0 || e > uint64(len(src)-used) {
		return nil, formatErr("rANS: bad escape stream length")
	}
	esc := src[used : used+int(e)]
	pos := used + int(e)
	lanes := min(n, 4)
	if len(src)-pos < 4*lanes {
		return nil, formatErr("rANS: truncated lane states")
	}
	var x [4]uint32
	for l := range lanes {
		x[l] = binary.LittleEndian.Uint32(src[pos:])
		if x[l] < 1<<16 {
			return nil, formatErr("rANS: lane %d state below 2^16", l)
		}
		pos += 4
	}
	out := make([]int32, n)
	for i := range n {
		t := tables[i%len(tables)]
		l := i % 4
		s := x[l] % (1 << t.prec)
		k := 0
		for !(t.cum[k] <= s && s < t.cum[k]+t.freq[k]) {
			k++
		}
		x[l] = t.freq[k]*(x[l]>>t.prec) + s - t.cum[k]
		if x[l] < 1<<16 {
			if len(src)-pos < 2 {
				return nil, formatErr("rANS: truncated renormalization word")
			}
			x[l] = x[l]<<16 | uint32(binary.LittleEndian.Uint16(src[pos:]))
			pos += 2
		}
		if k < len(t.freq)-1 {
			out[i] = t.min + int32(k)
			continue
		}
		u, used := uvarint(esc)
		if used <= 0 || u > 1<<32-1 {
			return nil, formatErr("rANS: escape value missing or invalid")
		}
		esc = esc[used:]
		v := int32(uint32(u)>>1) ^ -int32(uint32(u)&1)
		if t.direct(v) {
			return nil, formatErr("rANS: escaped value %d is coded directly by its table", v)
		}
		out[i] = v
	}
	if pos != len(src) {
		return nil, formatErr("rANS: %d bytes after the last word", len(src)-pos)
	}
	for l := range lanes {
		if x[l] != 1<<16 {
			return nil, formatErr("rANS: lane %d ends in state %#x, not 2^16", l, x[l])
		}
	}
	if len(esc) != 0 {
		return nil, formatErr("rANS: %d unused escape bytes", len(esc))
	}
	return out, nil
}
