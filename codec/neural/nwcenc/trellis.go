package nwcenc

import (
	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/codec/neural"
	"github.com/nwcodec/nwc/codec/trellis"
)

// trellisQuantize chooses the latents of the chunk-major array x (width
// chunks per chunk row, levels lv) by the Viterbi search of package
// trellis, one sequence per column and group (starts as in
// neural.ChunkSeq).
func trellisQuantize(x []float32, lv []uint8, p *neural.Params, width int, starts []bool) []int32 {
	const k = chunk.Rows
	y := make([]int32, len(x))
	nb := len(lv) / width
	off := float32(float32(p.Offset) / 256)
	var (
		tq       trellis.Quantizer
		seq, rec []float32
		out      []int32
	)
	for j := range width {
		// Every chunk of a column has the column's level.
		s := p.Steps[lv[j]]
		for b0 := 0; b0 < nb; {
			b1 := b0 + 1
			for b1 < nb && (starts == nil || !starts[b1]) {
				b1++
			}
			n := (b1 - b0) * k
			seq, rec, out = grow(seq, n), grow(rec, n), grow(out, n)
			for b := b0; b < b1; b++ {
				ci := b*width + j
				copy(seq[(b-b0)*k:], x[ci*k:(ci+1)*k])
			}
			tq.Quantize(seq, s, off, out, rec)
			for b := b0; b < b1; b++ {
				ci := b*width + j
				copy(y[ci*k:(ci+1)*k], out[(b-b0)*k:])
			}
			b0 = b1
		}
	}
	return y
}
