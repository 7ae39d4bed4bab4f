package spec

import (
	"encoding/binary"
	"math/bits"
)

// rtn (FORMAT.md §7.5) and q4k (§7.6).

func decodeRTN(t *tensorEntry, env *fileEnv) ([]byte, []float32, error) {
	var nbits, g uint64
	var transposed bool
	err := parseParamMap(t, map[string]paramReader{
		"bits":       uintParam(&nbits, 2, 8),
		"group":      uintParam(&g, 1, 1<<31-1),
		"transposed": boolParam(&transposed),
	})
	if err != nil {
		return nil, nil, err
	}
	m, err := parseMatrix(t, transposed)
	if err != nil {
		return nil, nil, err
	}
	if err := checkAuxNames(t); err != nil {
		return nil, nil, err
	}
	if t.n == 0 {
		return []byte{}, []float32{}, nil
	}
	n := uint64(m.cols)
	groups := (n + g - 1) / g
	// RowBytes = 2G + ⌈G·N/8⌉ + ⌈n·N/8⌉ (§7.5.2).
	rowBytes := 2*groups + (groups*nbits+7)/8 + (n*nbits+7)/8
	for i, gr := range t.groups {
		r0, r1 := m.groupRows(i)
		hi, want := bits.Mul64(uint64(r1-r0), rowBytes)
		if hi != 0 || gr.length != want {
			return nil, nil, formatErr("codec rtn: group %d has %d bytes, want %d rows of %d", i, gr.length, r1-r0, rowBytes)
		}
	}
	var w []float32
	for i, gr := range t.groups {
		payload, err := env.section(gr.section)
		if err != nil {
			return nil, nil, err
		}
		r0, r1 := m.groupRows(i)
		for r := range r1 - r0 {
			row := payload[uint64(r)*rowBytes : uint64(r+1)*rowBytes]
			scales := row[:2*groups]
			zeros := row[2*groups : 2*groups+(groups*nbits+7)/8]
			levels := row[2*groups+(groups*nbits+7)/8:]
			if err := checkPadding(zeros, groups*nbits); err != nil {
				return nil, nil, err
			}
			if err := checkPadding(levels, n*nbits); err != nil {
				return nil, nil, err
			}
			for k := range groups {
				if h := binary.LittleEndian.Uint16(scales[2*k:]); h&0x8000 != 0 || h&0x7c00 == 0x7c00 {
					return nil, nil, formatErr("codec rtn: group %d row %d: scale %#04x", i, r0+r, h)
				}
			}
			for x := range n {
				k := x / g
				s := f16ToF32(binary.LittleEndian.Uint16(scales[2*k:]))
				z := int32(bitField(zeros, k*nbits, nbits))
				q := int32(bitField(levels, x*nbits, nbits))
				w = append(w, float32(float32(q-z)*s))
			}
		}
	}
	data, vals := storeMatrix(m, t.dtype, w)
	return data, vals, nil
}

// bitField reads the n-bit value at stream bit b, least significant bit
// first; stream bit b is bit b mod 8 of byte ⌊b/8⌋.
func bitField(s []byte, b, n uint64) uint64 {
	var v uint64
	for i := range n {
		bit := b + i
		v |= uint64(s[bit/8]>>(bit%8)&1) << i
	}
	return v
}

// checkPadding checks that the bits of s past the first used are zero.
func checkPadding(s []byte, used uint64) error {
	for bit := used; bit < 8*uint64(len(s)); bit++ {
		if s[bit/8]>>(bit%8)&1 != 0 {
			return formatErr("codec rtn: nonzero padding bit")
		}
	}
	return nil
}

func decodeQ4K(t *tensorEntry, env *fileEnv) ([]byte, []float32, error) {
	var transposed bool
	if err := parseParamMap(t, map[string]paramReader{"transposed": boolParam(&transposed)}); err != nil {
		return nil, nil, err
	}
	m, err := parseMatrix(t, transposed)
	if err != nil {
		return nil, nil, err
	}
	if err := checkAuxNames(t); err != nil {
		return nil, nil, err
	}
	q4kBytes := func(n int) uint64 { return uint64((n+255)/256) * 144 }
	for i, g := range t.groups {
		r0, r1 := m.groupRows(i)
		if want := q4kBytes((r1 - r0) * m.cols); g.length != want {
			return nil, nil, formatErr("codec q4k: group %d has %d bytes, want %d", i, g.length, want)
		}
	}
	w := []float32{}
	for i, g := range t.groups {
		payload, err := env.section(g.section)
		if err != nil {
			return nil, nil, err
		}
		r0, r1 := m.groupRows(i)
		n := (r1 - r0) * m.cols
		var gw []float32
		for b := 0; b < len(payload); b += 144 {
			sb := payload[b : b+144]
			dh, mh := binary.LittleEndian.Uint16(sb[0:]), binary.LittleEndian.Uint16(sb[2:])
			if dh&0x7c00 == 0x7c00 || mh&0x7c00 == 0x7c00 {
				return nil, nil, formatErr("codec q4k: group %d super-block %d: d or dmin not finite", i, b/144)
			}
			d, dmin := f16ToF32(dh), f16ToF32(mh)
			s := sb[4:16]
			qs := sb[16:144]
			for x := range 256 {
				j := x / 32 // sub-block
				var sc, mn uint8
				if j < 4 {
					sc, mn = s[j]&63, s[j+4]&63
				} else {
					sc = s[j+4]&0x0f | (s[j-4]>>6)<<4
					mn = s[j+4]>>4 | (s[j]>>6)<<4
				}
				h, l := x/64, x%32
				q := qs[32*h+l] & 0x0f
				if x%64 >= 32 {
					q = qs[32*h+l] >> 4
				}
				dj := float32(d * float32(sc))
				mj := float32(dmin * float32(mn))
				gw = append(gw, float32(float32(dj*float32(q))-mj))
			}
		}
		w = append(w, gw[:n]...)
	}
	data, vals := storeMatrix(m, t.dtype, w)
	return data, vals, nil
}
