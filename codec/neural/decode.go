package neural

import (
	"encoding/binary"
	"math"
	"sync"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/codec/mlp"
	"github.com/nwcodec/nwc/codec/rans"
	"github.com/nwcodec/nwc/codec/trellis"
	"github.com/nwcodec/nwc/format"
)

// scratch holds the buffers of one group decode; a pool shares them
// between the groups a goroutine decodes.
type scratch struct {
	mlp       mlp.Scratch
	y, buf    []int32
	lv        []uint8
	in, dout  []float32
	out, rows []float32
	states    []uint8 // each column's trellis state on the plain path
	stream    rans.StreamDecoder
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// canonicalNaN is the one NaN a decoded value may be (FORMAT.md A.2): x86
// and arm64 make different NaNs of ±Inf·0.
var canonicalNaN = math.Float32frombits(0x7fc00000)

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// decoder decodes the groups of one tensor; it is immutable after
// NewDecoder and safe for concurrent use.
type decoder struct {
	name   string
	model  *decoderModel
	p      Params
	layout chunk.Layout
	ends   []int // group end rows
	// zeroCols lists the columns whose scale is 0: only there can w =
	// x̂·s be a NaN the hardware chooses (±Inf·0), which FORMAT.md §7.7.5
	// makes canonical.
	zeroCols []int
	scales   []float32
	levels   []uint8 // per column, nil when all 0
	tabs     [NumLevels]*rans.Table
	colLv    []uint8 // per column
	colsOf   [NumLevels]int
	// colTab is each column's reconstruction table and offs the grids'
	// offsets, for plain tensors.
	colTab []*plainTable
	offs   [2]float32
}

// nwcDecoder is the registered decoder: it decodes any model a file
// carries.
type nwcDecoder struct{}

func init() { codec.RegisterDecoder(ID, nwcDecoder{}) }

// NewDecoder implements codec.Decoder: it checks the entry's parameters,
// groups and auxiliary sections and parses the shared blob.
func (nwcDecoder) NewDecoder(t *format.Tensor, env codec.Env) (codec.GroupDecoder, error) {
	p, err := ParseParams(t.Params)
	if err != nil {
		return nil, format.TensorErrorf(t.Name, -1, "codec nwc: %v", err)
	}
	l, ends, err := chunk.ParseGroups(t, p.Transposed)
	if err != nil {
		return nil, err
	}
	d := &decoder{name: t.Name, p: p, layout: l, ends: ends}
	if l.Len() == 0 {
		// An empty tensor has nothing to decode, so it may carry no data
		// either: nothing can hide in a valid file.
		if len(t.Aux) != 0 || t.Blob >= 0 {
			return nil, format.TensorErrorf(t.Name, -1, "codec nwc: an empty tensor has aux data or a blob")
		}
		return d, nil
	}
	if err := chunk.CheckAux(t, chunk.AuxScales, chunk.AuxLevels, AuxTables); err != nil {
		return nil, err
	}
	if p.Plain {
		if t.Blob >= 0 {
			return nil, format.TensorErrorf(t.Name, -1, "codec nwc: a plain tensor references a blob")
		}
	} else {
		v, err := env.Blob(func(b []byte) (any, error) { return parseBlob(b) })
		if err != nil {
			return nil, err
		}
		d.model = v.(*decoderModel)
	}
	sb, err := env.Aux(chunk.AuxScales)
	if err != nil {
		return nil, err
	}
	if d.scales, err = chunk.ParseScales(sb, l.Cols); err != nil {
		return nil, format.TensorErrorf(t.Name, -1, "codec nwc: %v", err)
	}
	for j, s := range d.scales {
		if s == 0 {
			d.zeroCols = append(d.zeroCols, j)
		}
	}
	if _, ok := t.AuxEntry(chunk.AuxLevels); ok {
		lb, err := env.Aux(chunk.AuxLevels)
		if err != nil {
			return nil, err
		}
		if d.levels, err = chunk.ParseLevels(lb, l.Cols); err != nil {
			return nil, format.TensorErrorf(t.Name, -1, "codec nwc: %v", err)
		}
	}
	tb, err := env.Aux(AuxTables)
	if err != nil {
		return nil, err
	}
	tabs, err := ParseTables(tb, LevelsPresent(d.levels, l.Cols))
	if err != nil {
		return nil, format.TensorErrorf(t.Name, -1, "codec nwc: %v", err)
	}
	d.tabs = tabs
	d.colLv = make([]uint8, l.Cols)
	for j := range d.colLv {
		d.colLv[j] = levelOf(d.levels, j)
		d.colsOf[d.colLv[j]]++
	}
	if p.Plain {
		tabs := newPlainTables(&d.p)
		d.colTab = make([]*plainTable, l.Cols)
		for j, q := range d.colLv {
			d.colTab[j] = &tabs[q]
		}
		off := float32(float32(p.Offset) / 256)
		d.offs = [2]float32{trellis.Offset(0, off), trellis.Offset(2, off)}
	}
	return d, nil
}

// DecodeGroup implements codec.GroupDecoder.
func (d *decoder) DecodeGroup(i int, payload, dst []byte) error {
	return d.decodeGroup(i, payload, dst, true)
}

// decodeGroup decodes group i; fused selects the plain tensors' fused
// path, which gives the same bits as the general one.
func (d *decoder) decodeGroup(i int, payload, dst []byte, fused bool) error {
	if i < 0 || i >= len(d.ends) {
		return format.TensorErrorf(d.name, -1, "codec nwc: group %d of %d", i, len(d.ends))
	}
	l := d.layout
	r0 := 0
	if i > 0 {
		r0 = d.ends[i-1]
	}
	r1 := d.ends[i]
	b0, b1 := r0/chunk.Rows, chunk.Chunks(r1)
	cols := l.Cols
	n := (b1 - b0) * cols // chunks in the group
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	fused = fused && d.p.Plain && !l.Transposed
	if q := streamLevels(&d.tabs); fused && len(q) == 1 && b1*chunk.Rows <= l.Rows {
		// One stream and no ragged chunk: decode it a chunk row at a
		// time, each reconstructed while its latents are in cache.
		if err := d.decodePlainStream(payload, d.tabs[q[0]], b0, b1, r0, r1, dst, sc); err != nil {
			return format.TensorErrorf(d.name, -1, "codec nwc: group %d: level %d stream: %v", i, q[0], err)
		}
		return nil
	}
	sc.y = grow(sc.y, n*chunk.Rows)
	var err error
	sc.buf, err = DecodeLatents(sc.y, payload, d.colLv, &d.colsOf, b0, b1, l.Rows, cols, &d.tabs, sc.buf)
	if err != nil {
		return format.TensorErrorf(d.name, -1, "codec nwc: group %d: %v", i, err)
	}
	if fused {
		if err := d.decodePlainGroup(sc.y, b0, b1, r0, r1, dst, sc, true); err != nil {
			return format.TensorErrorf(d.name, -1, "codec nwc: group %d: %v", i, err)
		}
		return nil
	}
	return d.decodeGroupNet(i, b0, b1, r0, r1, dst, sc)
}

// decodeGroupNet reconstructs the group's latents in sc.y chunk by chunk
// (with the decoder net unless the tensor is plain) into a float32 copy
// of the group, scales it and stores it in dst.
func (d *decoder) decodeGroupNet(i, b0, b1, r0, r1 int, dst []byte, sc *scratch) error {
	l := d.layout
	cols := l.Cols
	sc.lv = d.colLv
	sc.in = grow(sc.in, cols*(chunk.Rows+1))
	sc.dout = grow(sc.dout, cols*chunk.Rows)
	sc.out = grow(sc.out, cols*chunk.Rows)
	sc.rows = grow(sc.rows, (r1-r0)*cols)
	var seq *ChunkSeq
	if d.p.Trellis {
		seq = NewChunkSeq(cols, nil) // the group is one sequence per column
	}
	for b := b0; b < b1; b++ {
		y := sc.y[(b-b0)*cols*chunk.Rows : (b-b0+1)*cols*chunk.Rows]
		if err := reconstruct(d.model, sc.out, y, sc.lv, cols, &d.p, seq, (b-b0)*cols, sc.in, sc.dout, &sc.mlp); err != nil {
			return format.TensorErrorf(d.name, -1, "codec nwc: group %d: %v", i, err)
		}
		// Write row by row (sequential stores) rather than chunk by
		// chunk, which would stride through the rows.
		for k := range validRows(b, l.Rows) {
			row := sc.rows[((b-b0)*chunk.Rows+k)*cols : ((b-b0)*chunk.Rows+k+1)*cols]
			for j, s := range d.scales {
				row[j] = sc.out[j*chunk.Rows+k] * s
			}
			for _, j := range d.zeroCols {
				if v := row[j]; v != v {
					row[j] = canonicalNaN
				}
			}
		}
	}
	if err := l.Store(dst, sc.rows); err != nil {
		return format.TensorErrorf(d.name, -1, "codec nwc: group %d: %v", i, err)
	}
	return nil
}

// A group's payload holds one rANS stream per importance level that occurs
// among the columns, in increasing level order, each but the last preceded
// by its byte length as a uvarint. The stream of level q holds, for each
// row of chunks of the group and each column of level q from left to
// right, the latents of the chunk's rows that exist in the matrix (a
// ragged last chunk codes fewer than 16). Splitting by level lets each
// stream use a single table, the fastest rANS decoding path.

// streamLevels lists the levels that have a table, in increasing order.
func streamLevels(tabs *[NumLevels]*rans.Table) []int {
	var qs []int
	for q, t := range tabs {
		if t != nil {
			qs = append(qs, q)
		}
	}
	return qs
}

// EncodeLatents returns the payload of the group made of chunk rows
// [b0, b1) of a rows×cols matrix: y holds their latents chunk-major, lv
// each column's level, tabs the tables of BuildTables.
func EncodeLatents(y []int32, lv []uint8, b0, b1, rows, cols int, tabs *[NumLevels]*rans.Table) ([]byte, error) {
	const k = chunk.Rows
	qs := streamLevels(tabs)
	if len(qs) == 1 && b1*k <= rows {
		// One level and no ragged chunk: the stream is y as it stands.
		return rans.Encode(nil, y[:(b1-b0)*cols*k], tabs[qs[0]:qs[0]+1])
	}
	syms := make([]int32, 0, (b1-b0)*cols*k)
	var out []byte
	for n, q := range qs {
		syms = syms[:0]
		for b := b0; b < b1; b++ {
			nv := validRows(b, rows)
			for j := range cols {
				if int(lv[j]) == q {
					c := (b-b0)*cols + j
					syms = append(syms, y[c*k:c*k+nv]...)
				}
			}
		}
		stream, err := rans.Encode(nil, syms, tabs[q:q+1])
		if err != nil {
			return nil, err
		}
		if n < len(qs)-1 {
			out = binary.AppendUvarint(out, uint64(len(stream)))
		}
		out = append(out, stream...)
	}
	return out, nil
}

// DecodeLatents decodes a group's payload into y (chunk-major latents of
// chunk rows [b0, b1), padding rows 0), the inverse of EncodeLatents.
// colsOf[q] is the number of columns of level q; buf is scratch, returned
// for reuse. Errors wrap format.ErrFormat.
func DecodeLatents(y []int32, payload []byte, lv []uint8, colsOf *[NumLevels]int, b0, b1, rows, cols int, tabs *[NumLevels]*rans.Table, buf []int32) ([]int32, error) {
	const k = chunk.Rows
	qs := streamLevels(tabs)
	groupRows := min(b1*k, rows) - b0*k
	if len(qs) == 1 && b1*k <= rows && len(y) == (b1-b0)*cols*k {
		// One level and no ragged chunk: the stream is y as it stands.
		if err := rans.Decode(payload, tabs[qs[0]:qs[0]+1], y); err != nil {
			return buf, format.Errorf(-1, "level %d stream: %v", qs[0], err)
		}
		return buf, nil
	}
	clear(y)
	for n, q := range qs {
		stream := payload
		if n < len(qs)-1 {
			l, used := binary.Uvarint(payload)
			if used <= 0 || l > uint64(len(payload)-used) || (used > 1 && payload[used-1] == 0) {
				return buf, format.Errorf(-1, "level %d stream length is corrupt", q)
			}
			stream, payload = payload[used:used+int(l)], payload[used+int(l):]
		}
		buf = grow(buf, colsOf[q]*groupRows)
		if err := rans.Decode(stream, tabs[q:q+1], buf); err != nil {
			return buf, format.Errorf(-1, "level %d stream: %v", q, err)
		}
		i := 0
		for b := b0; b < b1; b++ {
			nv := validRows(b, rows)
			for j := range cols {
				if int(lv[j]) == q {
					c := (b-b0)*cols + j
					i += copy(y[c*k:c*k+nv], buf[i:i+nv])
				}
			}
		}
	}
	return buf, nil
}
