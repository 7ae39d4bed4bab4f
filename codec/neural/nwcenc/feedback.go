package nwcenc

import (
	"errors"
	"fmt"
	"slices"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/codec/mlp"
	"github.com/nwcodec/nwc/codec/neural"
	"github.com/nwcodec/nwc/internal/parallel"
	"github.com/nwcodec/nwc/ldlq"
)

// A pass codes one tensor's matrix with one quantizer, column block by
// column block, through ldlq.Drive: in plain block order without a
// Hessian, else with LDLQ error feedback. The encoder runs one pass per
// candidate coding, because the feedback depends on the quantizer's
// errors.
type pass struct {
	c          *Encoder
	w          []float32 // rows×cols, the loaded weights; only normalize modifies them
	rows, cols int
	colLv      []uint8
	hessian    []float64
	factors    []float32 // column scale factors, or nil
	starts     []bool    // chunk rows that begin a group (trellis sequences restart)
	block      int       // columns per LDLQ block; 0 is ldlq.DefaultBlock
	jobs       int       // goroutines, as codec.EncodeOptions.Jobs
	// interrupt is codec.EncodeOptions.Interrupt, checked before each
	// column block.
	interrupt func() error
	// scales are the column scales of every pass without a Hessian (fp16
	// bits, from the whole matrix even when w is a sample of it), or nil
	// to compute them from w.
	scales []uint16
	// x, when set, is the whole matrix already normalized by scales into
	// chunk order (normalize), and w is nil: without a Hessian a large
	// matrix is normalized once, so that its float32 weights are not held
	// alongside its latents. Passes read it and never modify it.
	x []float32
	// auxWeight is the share of the table bytes that measure charges: 1,
	// or for a sample its share of the matrix, the tables being paid once
	// per tensor.
	auxWeight float64
}

// A coding is the outcome of a pass, in the encoder's chunk order (rows of
// chunks, columns within a row): the normalized chunks the quantizer was
// given (LDLQ's targets, with padding rows of a ragged last chunk zero),
// their latents (padding zero), the column scales as fp16 bits and as
// values, and the parameters.
type coding struct {
	x      []float32
	y      []int32
	h      []uint16
	scales []float32
	p      neural.Params
}

// plain codes the matrix as the scalar quantizer at p's steps. The
// centroid offset enters the reconstruction that LDLQ feeds back, so it
// must be fixed before the pass; it is fitted to the weights as loaded
// (as ecsq does), which without a Hessian is exactly the coding's own.
func (r *pass) plain(p neural.Params, trellis bool) (*coding, error) {
	p.Plain = true
	p.Trellis = trellis
	p.Offset = 0
	free := *r
	free.hessian = nil
	cd, err := free.code(p, false)
	if err != nil {
		return nil, err
	}
	lv := make([]uint8, len(cd.y)/chunk.Rows)
	for ci := range lv {
		lv[ci] = r.colLv[ci%r.cols]
	}
	p.Offset = centroidOffset(cd.x, cd.y, lv, &cd.p, cd.scales, r.rows, r.cols, r.starts)
	if r.hessian == nil && !p.Trellis {
		// Without feedback or a trellis the latents do not depend on
		// the offset.
		cd.p.Offset = p.Offset
		return cd, nil
	}
	return r.code(p, false)
}

// code runs the pass with the learned encoder net (learned) or the plain
// scalar quantizer, with p's steps and offset.
//
// Each block's scales are the fp16 RMS of its columns as they stand when
// the block is reached, after LDLQ has folded the earlier blocks' error
// into them: those are the scales the file stores and the decoder
// multiplies by. Without a Hessian they are the RMS of the weights, and
// the whole matrix is one block, so the network sees the same batches as
// an encoder without LDLQ (the nets are batch-independent anyway).
func (r *pass) code(p neural.Params, learned bool) (*coding, error) {
	const k = chunk.Rows
	rows, cols := r.rows, r.cols
	nb := chunk.Chunks(rows)
	cd := &coding{
		x:      r.x,
		h:      make([]uint16, cols),
		scales: make([]float32, cols),
		p:      p,
	}
	if cd.x == nil {
		cd.x = make([]float32, nb*cols*k)
	}
	m := r.w
	if r.hessian != nil {
		cd.y = make([]int32, nb*cols*k)
		// LDLQ overwrites the matrix with targets and decoded values.
		m = slices.Clone(r.w)
	}
	var (
		colBuf, bx, out []float32
		blv             []uint8
		sc              mlp.Scratch
		scIn, scDout    []float32
	)
	quant := func(c0, c1 int) error {
		bw := c1 - c0
		hb := r.scales
		if hb == nil || r.hessian != nil {
			colBuf = grow(colBuf, rows*bw)
			for i := range rows {
				copy(colBuf[i*bw:(i+1)*bw], m[i*cols+c0:i*cols+c1])
			}
			var f []float32
			if r.factors != nil {
				f = r.factors[c0:c1]
			}
			hb = chunk.CodingScales(colBuf, rows, bw, f)
		} else {
			hb = hb[c0:c1]
		}
		copy(cd.h[c0:], hb)
		copy(cd.scales[c0:], chunk.ScaleValues(hb))

		// The block's chunks, in the same order as the whole matrix's;
		// a block of every column is the whole array.
		n := nb * bw
		whole := bw == cols
		if whole {
			bx = cd.x
		} else {
			bx = grow(bx, n*k)
		}
		blv = grow(blv, n)
		for ci := range blv {
			blv[ci] = r.colLv[c0+ci%bw]
		}
		if r.x == nil {
			normalizeChunks(bx, m, rows, cols, c0, c1, cd.scales, r.jobs)
		}
		var (
			y   []int32
			err error
		)
		if learned {
			if y, err = r.c.latents(bx, blv, &cd.p, r.jobs); err != nil {
				return err
			}
		} else {
			y = quantizeAll(bx, blv, &cd.p, bw, r.starts, r.jobs)
		}
		// Padding rows of a ragged last chunk are not coded; the decoder
		// sees them as 0, so the encoder must too.
		if vr := validRows(nb-1, rows); vr < k {
			for ci := (nb - 1) * bw; ci < n; ci++ {
				clear(y[ci*k+vr : (ci+1)*k])
			}
		}
		if whole {
			cd.y = y
		} else {
			for b := range nb {
				src, dst := b*bw*k, (b*cols+c0)*k
				copy(cd.x[dst:dst+bw*k], bx[src:src+bw*k])
				copy(cd.y[dst:dst+bw*k], y[src:src+bw*k])
			}
		}
		if r.hessian == nil {
			return nil // nothing reads the decoded values
		}
		out = grow(out, n*k)
		scIn = grow(scIn, min(n, encodeBatch)*(k+1))
		scDout = grow(scDout, min(n, encodeBatch)*k)
		seq := neural.NewChunkSeq(bw, r.starts)
		for a := 0; a < n; a += encodeBatch {
			if err := r.c.c.Reconstruct(out[a*k:], y[a*k:], blv[a:], min(encodeBatch, n-a), &cd.p, seq, a, scIn, scDout, &sc); err != nil {
				return err
			}
		}
		// What the decoder writes: the normalized value times the scale.
		for b := range nb {
			for j := c0; j < c1; j++ {
				ci, s := b*bw+j-c0, cd.scales[j]
				for i := range validRows(b, rows) {
					m[(b*k+i)*cols+j] = out[ci*k+i] * s
				}
			}
		}
		return nil
	}
	quant = (&codec.EncodeOptions{Interrupt: r.interrupt}).Interruptible(quant)
	var err error
	if r.hessian == nil {
		// Without a Hessian the whole matrix is one block.
		err = quant(0, cols)
	} else {
		err = ldlq.Drive(m, rows, cols, r.hessian, r.block, quant)
	}
	if errors.Is(err, ldlq.ErrInvalid) || errors.Is(err, ldlq.ErrNotPositiveDefinite) {
		return nil, fmt.Errorf("%w: %w", codec.ErrOptions, err)
	}
	if err != nil {
		return nil, err
	}
	return cd, nil
}

// normalize returns r's matrix divided by its column scales (r.scales,
// set when there is no Hessian) in chunk order, as code gives it to the
// quantizer, for pass.x. It consumes r.w: where the array has room for
// the padding of a ragged last chunk (as chunk.Load leaves it) the
// chunks overwrite the weights one chunk row at a time, so that the
// matrix is never held twice; the caller must drop r.w.
func (r *pass) normalize() []float32 {
	const k = chunk.Rows
	rows, cols := r.rows, r.cols
	nb := chunk.Chunks(rows)
	scales := chunk.ScaleValues(r.scales)
	if cap(r.w) < nb*cols*k {
		x := make([]float32, nb*cols*k)
		normalizeChunks(x, r.w, rows, cols, 0, cols, scales, r.jobs)
		return x
	}
	// A chunk row's weights and its chunks occupy the same span.
	x := r.w[:nb*cols*k]
	parallel.Range(r.jobs, nb, 4, func(b0, b1 int) error {
		tmp := make([]float32, k*cols)
		for b := b0; b < b1; b++ {
			span := x[b*k*cols : (b+1)*k*cols]
			vr := validRows(b, rows)
			copy(tmp, span[:vr*cols])
			normalizeChunks(span, tmp[:vr*cols], vr, cols, 0, cols, scales, 1)
		}
		return nil
	})
	return x
}

// normalizeChunks writes columns [c0, c1) of the rows×cols matrix m,
// divided by their scales (indexed by column), into bx in chunk order:
// rows of chunks, the block's columns within a row, padding rows of a
// ragged last chunk zero. As chunk.Normalize, a zero scale zeroes its
// column.
func normalizeChunks(bx, m []float32, rows, cols, c0, c1 int, scales []float32, jobs int) {
	const k = chunk.Rows
	bw := c1 - c0
	parallel.Range(jobs, chunk.Chunks(rows), 4, func(b0, b1 int) error {
		for b := b0; b < b1; b++ {
			vr := validRows(b, rows)
			for j := c0; j < c1; j++ {
				ci := b*bw + j - c0
				xc := bx[ci*k : (ci+1)*k]
				if s := scales[j]; s == 0 {
					clear(xc[:vr])
				} else {
					for i := range vr {
						xc[i] = m[(b*k+i)*cols+j] / s
					}
				}
				clear(xc[vr:])
			}
		}
		return nil
	})
}
