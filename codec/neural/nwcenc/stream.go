package nwcenc

import (
	"fmt"
	"math"
	"sync"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/codec/neural"
	"github.com/nwcodec/nwc/codec/rans"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/internal/parallel"
)

// Streaming. A large matrix coded without a Hessian is never held whole
// in float32: its column scales come from one pass over its rows in the
// source dtype, the choice from a sample of rows, and the coding from a
// second pass, slab by slab of whole chunk groups (trellis sequences
// restart at every group, and the other codings are chunk by chunk, so a
// slab codes exactly as it would within the whole matrix). Each slab's
// latents are counted into the tables' histograms and kept in the
// narrowest integer type that holds them; the groups are entropy-coded
// once every latent is counted. At its peak the encoder holds the source
// bytes, the latents (one byte a weight at usual rates) and the slab's
// buffers, against two float32 copies (8 bytes a weight) when the matrix
// is loaded whole; the file is the same byte for byte.

// slabWeights is about how many weights a slab holds: enough that each
// goroutine gets milliseconds of work per slab. Tests lower it.
var slabWeights = 1 << 20

// streams reports whether Encode codes a matrix of layout l with opts by
// streaming: without a Hessian (LDLQ feeds errors across all rows), not
// transposed (its rows are strided in storage and it is one group), and
// large enough to be decided on a sample.
func (c *Encoder) streams(l chunk.Layout, opts *codec.EncodeOptions) bool {
	return opts.Hessian == nil && !l.Transposed && !c.wholeChoice && !c.loadWhole && l.Len() > 2*sampleWeights
}

// rowReader converts row ranges of a tensor's matrix (not transposed) to
// float32.
type rowReader struct {
	t    *codec.Tensor
	cols int
}

// read converts rows [r0, r1) into dst's storage, reallocating when it is
// short, and returns them.
func (r rowReader) read(dst []float32, r0, r1 int) ([]float32, error) {
	size := r.t.DType.Size()
	return dtype.ToFloat32(dst[:0], r.t.Data[r0*r.cols*size:r1*r.cols*size], r.t.DType)
}

// A packed holds one group's latents in the narrowest of int8, int16 and
// int32 that holds them all.
type packed struct {
	i8  []int8
	i16 []int16
	i32 []int32
}

func pack(y []int32) packed {
	lo, hi := int32(0), int32(0)
	for _, v := range y {
		lo, hi = min(lo, v), max(hi, v)
	}
	switch {
	case lo >= math.MinInt8 && hi <= math.MaxInt8:
		p := make([]int8, len(y))
		for i, v := range y {
			p[i] = int8(v)
		}
		return packed{i8: p}
	case lo >= math.MinInt16 && hi <= math.MaxInt16:
		p := make([]int16, len(y))
		for i, v := range y {
			p[i] = int16(v)
		}
		return packed{i16: p}
	}
	return packed{i32: append([]int32(nil), y...)}
}

// unpack returns the latents, widened into dst's storage when they are
// packed narrower.
func (p packed) unpack(dst []int32) []int32 {
	switch {
	case p.i8 != nil:
		dst = grow(dst, len(p.i8))
		for i, v := range p.i8 {
			dst[i] = int32(v)
		}
		return dst
	case p.i16 != nil:
		dst = grow(dst, len(p.i16))
		for i, v := range p.i16 {
			dst[i] = int32(v)
		}
		return dst
	}
	return p.i32
}

// encodeStreamed is Encode for a matrix that streams (see above).
func (c *Encoder) encodeStreamed(t *codec.Tensor, l chunk.Layout, opts *codec.EncodeOptions, step float64) (*codec.Encoded, error) {
	const k = chunk.Rows
	rows, cols := l.Rows, l.Cols
	if err := chunk.CheckLevels(opts.Levels, cols); err != nil {
		return nil, err
	}
	if err := chunk.CheckFactors(opts.ScaleFactors, cols); err != nil {
		return nil, err
	}
	levels := opts.Levels
	if !slicesAny(levels) {
		levels = nil
	}
	ends, err := chunk.GroupRows(l, opts.GroupBytes)
	if err != nil {
		return nil, err
	}
	src := rowReader{t: t, cols: cols}
	// The scales, checking every weight on the way as chunk.Load does.
	per := max(1, slabWeights/cols)
	sums := make([]float64, cols)
	var m []float32
	for r0 := 0; r0 < rows; r0 += per {
		r1 := min(r0+per, rows)
		if m, err = src.read(m, r0, r1); err != nil {
			return nil, err
		}
		if i := chunk.AddSquaresFinite(sums, m, cols); i >= 0 {
			return nil, fmt.Errorf("%w: tensor %q element %d is %v", chunk.ErrNonFinite, t.Name, r0*cols+i, m[i])
		}
	}
	h := chunk.CodingScalesOf(chunk.ScalesOfSums(sums, rows), opts.ScaleFactors)
	scales := chunk.ScaleValues(h)

	p := neural.StepsFor(step)
	enc := &codec.Encoded{View: l.View, Blob: &codec.BlobData{Codec: neural.ID, Data: c.c.Blob()}}
	colLv := make([]uint8, cols)
	for j := range colLv {
		colLv[j] = levelOf(levels, j)
	}
	starts := neural.GroupStarts(rows, ends)
	whole := pass{c: c, rows: rows, cols: cols, colLv: colLv, factors: opts.ScaleFactors, starts: starts, jobs: opts.Jobs, interrupt: opts.Interrupt, scales: h, auxWeight: 1}
	noBlob := opts.NoBlob && c.force != forceLearned
	if pick, ok := c.estimate(opts, p); ok {
		p = pick
	} else {
		smp, err := whole.sampleFrom(func(dst []float32, r0, r1 int) ([]float32, error) { return src.read(dst, r0, r1) })
		if err != nil {
			return nil, err
		}
		cd, _, err := c.decide(smp, step, p, noBlob)
		if err != nil {
			return nil, err
		}
		p = cd.p
	}
	rounding := p.Plain && !p.Trellis
	if rounding {
		// The centroid offset is fitted to the whole matrix below; the
		// latents of rounding do not depend on it.
		p.Offset = 0
	}

	// The coding pass, slab by slab of whole groups.
	var (
		hist [neural.NumLevels]*rans.Histogram
		off  offsetSums
		bx   []float32
		blv  []uint8
	)
	lat := make([]packed, len(ends))
	for g0 := 0; g0 < len(ends); {
		r0 := 0
		if g0 > 0 {
			r0 = ends[g0-1]
		}
		g1 := g0 + 1
		for g1 < len(ends) && (ends[g1-1]-r0)*cols < slabWeights {
			g1++
		}
		r1 := ends[g1-1]
		srows := r1 - r0
		nb := chunk.Chunks(srows)
		if m, err = src.read(m, r0, r1); err != nil {
			return nil, err
		}
		bx = grow(bx, nb*cols*k)
		normalizeChunks(bx, m, srows, cols, 0, cols, scales, opts.Jobs)
		blv = grow(blv, nb*cols)
		for ci := range blv {
			blv[ci] = colLv[ci%cols]
		}
		sst := starts[r0/k : r0/k+nb]
		var y []int32
		if !p.Plain {
			if y, err = c.latents(bx, blv, &p, opts.Jobs); err != nil {
				return nil, err
			}
		} else {
			y = quantizeAll(bx, blv, &p, cols, sst, opts.Jobs)
		}
		// Padding rows of a ragged last chunk are not coded; the decoder
		// sees them as 0, so the encoder must too.
		if vr := validRows(nb-1, srows); vr < k {
			for ci := (nb - 1) * cols; ci < nb*cols; ci++ {
				clear(y[ci*k+vr : (ci+1)*k])
			}
		}
		if rounding {
			off.add(bx, y, blv, &p, scales, srows, cols, sst)
		}
		sh := levelHistograms(y, blv, srows, cols, opts.Jobs)
		for q := range hist {
			switch {
			case sh[q] == nil:
			case hist[q] == nil:
				hist[q] = sh[q]
			default:
				hist[q] = rans.MergeHistograms(hist[q], sh[q])
			}
		}
		err = parallel.Each(opts.Jobs, g1-g0, func(i int) error {
			g := g0 + i
			a := 0
			if g > 0 {
				a = ends[g-1]
			}
			b0, b1 := (a-r0)/k, chunk.Chunks(ends[g]-r0)
			lat[g] = pack(y[b0*cols*k : b1*cols*k])
			return nil
		})
		if err != nil {
			return nil, err
		}
		g0 = g1
	}
	m, bx = nil, nil
	if opts.ReleaseInput {
		// Only the latents are coded from here on.
		t.Data = nil
	}
	if rounding {
		p.Offset = off.offset()
	}
	tables, tableAux, err := buildTables(&hist)
	if err != nil {
		return nil, err
	}

	enc.Params = p.Marshal()
	if p.Plain {
		enc.Blob = nil
	} else if opts.BlobRef {
		_, enc.Blob.Ref = codec.BuiltinBlob(neural.ID, c.c.BlobSHA256())
	}
	enc.Groups = make([]codec.EncodedGroup, len(ends))
	bufs := sync.Pool{New: func() any { return new([]int32) }}
	err = parallel.Each(opts.Jobs, len(ends), func(g int) error {
		r0, r1 := 0, ends[g]
		if g > 0 {
			r0 = ends[g-1]
		}
		buf := bufs.Get().(*[]int32)
		defer bufs.Put(buf)
		*buf = lat[g].unpack(*buf)
		lat[g] = packed{}
		data, err := neural.EncodeLatents(*buf, colLv, r0/k, chunk.Chunks(r1), rows, cols, &tables)
		enc.Groups[g] = codec.EncodedGroup{End: uint64(r1) * uint64(cols), Data: data}
		return err
	})
	if err != nil {
		return nil, err
	}
	sa, err := chunk.AppendScales(nil, h)
	if err != nil {
		return nil, err
	}
	enc.Aux = []codec.NamedBytes{{Name: chunk.AuxScales, Data: sa}, {Name: neural.AuxTables, Data: tableAux}}
	if levels != nil {
		enc.Aux = append(enc.Aux, codec.NamedBytes{Name: chunk.AuxLevels, Data: chunk.AppendLevels(nil, levels)})
	}
	enc.Aux = sortedAux(enc.Aux)
	return enc, nil
}
