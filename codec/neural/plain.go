package neural

import (
	"encoding/binary"
	"math"
	"unsafe"

	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/codec/rans"
	"github.com/nwcodec/nwc/codec/trellis"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
)

// plainSpan bounds the latents the plain path reconstructs by table
// lookup: those in [−plainSpan, plainSpan). At 2–8 bits per weight nearly
// every latent is; the others take trellis.Value, which the table merely
// caches, so both give the same bits.
const (
	plainBits = 8
	plainSpan = 1 << (plainBits - 1)
)

// A plainTable holds one level's reconstructions trellis.Value(k, Δ, off)
// of the latents k in [−plainSpan, plainSpan) on its two grids, Q0
// (states 0 and 1, offset off) and Q1 (states 2 and 3, offset off + ½):
// grid g's at flat[g<<plainBits | k+plainSpan]. Without a trellis only
// Q0 is used.
type plainTable struct{ flat [2 * 2 * plainSpan]float32 }

// newPlainTables returns the tables of every level of a plain tensor.
func newPlainTables(p *Params) *[NumLevels]plainTable {
	off := float32(float32(p.Offset) / 256) // as reconstruct rounds it
	var t [NumLevels]plainTable
	for q := range t {
		for g := range 2 {
			o := trellis.Offset(uint8(2*g), off)
			for u := range 2 * plainSpan {
				t[q].flat[g*2*plainSpan+u] = trellis.Value(int32(u)-plainSpan, p.Steps[q], o)
			}
		}
	}
	return &t
}

// decodePlainStream is decodePlainGroup for a group whose payload is a
// single rANS stream coded with tab and which has no ragged chunk: it
// decodes the latents one chunk row at a time into a buffer that stays in
// cache and reconstructs each at once.
func (d *decoder) decodePlainStream(payload []byte, tab *rans.Table, b0, b1, r0, r1 int, dst []byte, sc *scratch) error {
	cols := d.layout.Cols
	n := cols * chunk.Rows
	if err := sc.stream.Reset(payload, tab, (b1-b0)*n); err != nil {
		return err
	}
	sc.y = grow(sc.y, n)
	for b := b0; b < b1; b++ {
		if err := sc.stream.Next(sc.y); err != nil {
			return err
		}
		if err := d.decodePlainGroup(sc.y, b, b+1, r0, r1, dst, sc, b == b0); err != nil {
			return err
		}
	}
	return sc.stream.Close()
}

// decodePlainGroup decodes the chunk rows [b0, b1) of a plain tensor's
// group, rows [r0, r1), straight into dst (first says b0 is the group's
// first chunk row) in the tensor's dtype: the
// latents y (chunk-major) are reconstructed, scaled and stored one output
// row at a time, walking each column's trellis state down the rows, so no
// float32 copy of the group is made. The arithmetic is reconstruct's and
// DecodeGroup's, value for value.
func (d *decoder) decodePlainGroup(y []int32, b0, b1, r0, r1 int, dst []byte, sc *scratch, first bool) error {
	l := d.layout
	cols := l.Cols
	size := l.DType.Size()
	if len(dst) != (r1-r0)*cols*size {
		return format.Errorf(-1, "storing %d rows of %d columns into %d bytes", r1-r0, cols, len(dst))
	}
	// The group is one trellis sequence per column, from state 0 at its
	// first chunk row. Without a trellis, gridMask keeps every latent on
	// grid Q0.
	sc.states = grow(sc.states, cols)
	if first {
		clear(sc.states)
	}
	gridMask := uint8(0)
	if d.p.Trellis {
		gridMask = 1
	}
	rowBytes := cols * size
	for b := b0; b < b1; b++ {
		yb := y[(b-b0)*cols*chunk.Rows : (b-b0+1)*cols*chunk.Rows]
		nv := validRows(b, l.Rows)
		o := (b*chunk.Rows - r0) * rowBytes
		out := dst[o : o+nv*rowBytes]
		if l.DType == format.BF16 {
			d.plainChunksBF16(out, yb, nv, sc.states, gridMask)
			continue
		}
		sc.rows = grow(sc.rows, nv*cols)
		d.plainChunks(sc.rows, yb, nv, sc.states, gridMask)
		if _, err := dtype.FromFloat32(out[:0], sc.rows, l.DType); err != nil {
			return err
		}
	}
	return nil
}

// plainChunks writes the first nv rows of a chunk row (the latents yb of
// its chunks, chunk-major) to m, nv rows of len(states) values, advancing
// each column's trellis state. gridMask is 1 with a trellis and 0
// without, which keeps every latent on grid Q0. Reading the latents in
// order and keeping a column's state in a register while its chunk is
// walked is what makes the walk fast; the stores stride over at most 16
// rows, which stay in cache.
func (d *decoder) plainChunks(m []float32, yb []int32, nv int, states []uint8, gridMask uint8) {
	cols := len(states)
	tabs, scales := d.colTab[:cols], d.scales[:cols]
	m = m[:nv*cols]
	for j := range cols {
		yc := (*[chunk.Rows]int32)(yb[j*chunk.Rows:])
		tab, s, st := tabs[j], scales[j], states[j]
		for i := range nv {
			k := yc[i&(chunk.Rows-1)]
			g := st >> 1 & gridMask
			var v float32
			if u := uint32(k + plainSpan); u < 2*plainSpan {
				v = tab.flat[(uint32(g)<<plainBits|u)&(4*plainSpan-1)]
			} else {
				v = d.farValue(k, j, g)
			}
			// trellis.Next: the parity of k and the state's low bit give
			// the new grid bit, the old grid bit the new low bit.
			st = (st^uint8(k))&1<<1 | st>>1&1
			w := v * s
			if w != w { // ±Inf·0 in a column of scale 0
				w = canonicalNaN
			}
			m[i*cols+j] = w
		}
		states[j] = st
	}
}

// plainChunksBF16 is plainChunks storing bfloat16 (as
// dtype.BF16FromFloat32 rounds) straight into out, nv rows of
// 2·len(states) bytes. It walks two columns at once, whose independent
// trellis chains overlap and whose values share one 4-byte store.
func (d *decoder) plainChunksBF16(out []byte, yb []int32, nv int, states []uint8, gridMask uint8) {
	cols := len(states)
	rowBytes := 2 * cols
	out = out[:nv*rowBytes]
	// The grid bits of both columns' states (bits 1 and 9) or none.
	gm := uint32(gridMask)<<1 | uint32(gridMask)<<9
	j := 0
	for ; j+2 <= cols; j += 2 {
		s0, s1 := d.scales[j], d.scales[j+1]
		// A zero scale may make NaNs, which the column walk checks for;
		// a partial last chunk row is rare.
		if s0 == 0 || s1 == 0 || nv != chunk.Rows {
			d.plainColumnBF16(out, yb, nv, states, gridMask, j)
			d.plainColumnBF16(out, yb, nv, states, gridMask, j+1)
			continue
		}
		y := (*[2 * chunk.Rows]int32)(yb[j*chunk.Rows:])
		t0, t1 := &d.colTab[j].flat, &d.colTab[j+1].flat
		// Both columns' states in one register, state = g<<1 | l (grid
		// bit g, low bit l), column j's in bits 0–1 and column j+1's in
		// bits 8–9: trellis.Next makes the new grid bit (l ^ k) & 1 and
		// the new low bit g. Few live values keep the loop in registers.
		st := (uint32(states[j]) | uint32(states[j+1])<<8) & (gm | 0x101)
		// One bounds check for the whole walk: the last row's pair of
		// values ends at 15·rowBytes + 2j + 4 ≤ len(out). The stores are
		// then made through a pointer, which the compiler cannot check,
		// instead of two checks per value pair.
		_ = out[(chunk.Rows-1)*rowBytes+2*j+3]
		o := unsafe.Pointer(&out[2*j])
		// The loop makes no call, which would spill its state to the
		// stack: a latent outside the tables' span (far ≥ 2·plainSpan
		// after the walk) reads a wrong but in-bounds entry, and the
		// pair is then walked again by plainColumnBF16, which computes it.
		far := uint32(0)
		// off, not o, steps past the last row: a pointer past the end of
		// out would be invalid (checkptr refuses it).
		off := 0
		for i := range chunk.Rows {
			k0, k1 := y[i], y[chunk.Rows+i]
			u0, u1 := uint32(k0+plainSpan), uint32(k1+plainSpan)
			far |= u0 | u1
			v0 := t0[(st<<(plainBits-1)&(1<<plainBits)|u0)&(4*plainSpan-1)]
			v1 := t1[(st>>1&(1<<plainBits)|u1)&(4*plainSpan-1)]
			kp := (uint32(k0)&1)<<1 | (uint32(k1)&1)<<9
			st = (st<<1^kp)&gm | st>>1&0x101
			// A nonzero scale times a finite or infinite value is
			// never a NaN, so no NaN check is needed here.
			b0 := math.Float32bits(v0 * s0)
			b1 := math.Float32bits(v1 * s1)
			h0 := (b0 + 0x7fff + b0>>16&1) >> 16
			h1 := (b1 + 0x7fff + b1>>16&1) >> 16
			binary.LittleEndian.PutUint32((*[4]byte)(unsafe.Add(o, off))[:], h0|h1<<16)
			off += rowBytes
		}
		if far >= 2*plainSpan {
			d.plainColumnBF16(out, yb, nv, states, gridMask, j)
			d.plainColumnBF16(out, yb, nv, states, gridMask, j+1)
			continue
		}
		states[j], states[j+1] = uint8(st), uint8(st>>8)
	}
	if j < cols {
		d.plainColumnBF16(out, yb, nv, states, gridMask, j)
	}
}

// plainColumnBF16 is plainChunksBF16 for column j alone, with the check
// for the NaN of ±Inf·0 that a column of scale 0 may produce.
func (d *decoder) plainColumnBF16(out []byte, yb []int32, nv int, states []uint8, gridMask uint8, j int) {
	rowBytes := 2 * len(states)
	yc := (*[chunk.Rows]int32)(yb[j*chunk.Rows:])
	tab, s := &d.colTab[j].flat, d.scales[j]
	g, l := states[j]>>1&gridMask, states[j]&1
	for i := range nv {
		k := yc[i&(chunk.Rows-1)]
		var v float32
		if u := uint32(k + plainSpan); u < 2*plainSpan {
			v = tab[(uint32(g)<<plainBits|u)&(4*plainSpan-1)]
		} else {
			v = d.farValue(k, j, g)
		}
		g, l = (l^uint8(k))&gridMask, g
		w := v * s
		h := uint16(0x7fc0) // the canonical NaN
		if w == w {
			b := math.Float32bits(w)
			h = uint16((b + 0x7fff + b>>16&1) >> 16)
		}
		binary.LittleEndian.PutUint16(out[i*rowBytes+2*j:], h)
	}
	states[j] = g<<1 | l
}

// farValue is the reconstruction of a latent outside the tables, in
// column j on grid g.
func (d *decoder) farValue(k int32, j int, g uint8) float32 {
	return trellis.Value(k, d.p.Steps[d.colLv[j]], d.offs[g&1])
}
