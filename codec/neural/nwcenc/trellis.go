package nwcenc

import (
	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/codec/neural"
	"github.com/nwcodec/nwc/codec/trellis"
	"github.com/nwcodec/nwc/internal/parallel"
)

// trellisQuantize chooses the latents of the chunk-major array x (width
// chunks per chunk row, levels lv) by the Viterbi search of package
// trellis, one sequence per column and group (starts as in
// neural.ChunkSeq). Columns are independent, so they are searched on up
// to jobs goroutines.
func trellisQuantize(x []float32, lv []uint8, p *neural.Params, width int, starts []bool, jobs int) []int32 {
	const k = chunk.Rows
	y := make([]int32, len(x))
	nb := len(lv) / width
	off := float32(float32(p.Offset) / 256)
	// Columns go in tiles of trellisTile: the chunks of a tile in one
	// chunk row are adjacent in x, which a column alone is not. Parts of
	// at least 64 K values keep each goroutine busy for a millisecond or
	// more.
	tiles := (width + trellisTile - 1) / trellisTile
	minTiles := max(1, (64<<10)/max(1, nb*k*trellisTile))
	parallel.Range(jobs, tiles, minTiles, func(t0, t1 int) error {
		var (
			tq       trellis.Quantizer
			seq, rec []float32
			out      []int32
		)
		for j0 := t0 * trellisTile; j0 < min(width, t1*trellisTile); j0 += trellisTile {
			tw := min(trellisTile, width-j0)
			for b0 := 0; b0 < nb; {
				b1 := b0 + 1
				for b1 < nb && (starts == nil || !starts[b1]) {
					b1++
				}
				n := (b1 - b0) * k
				seq, out = grow(seq, tw*n), grow(out, tw*n)
				rec = grow(rec, n)
				for b := b0; b < b1; b++ {
					for t := range tw {
						ci := b*width + j0 + t
						copy(seq[t*n+(b-b0)*k:], x[ci*k:(ci+1)*k])
					}
				}
				for t := range tw {
					// Every chunk of a column has the column's level.
					tq.Quantize(seq[t*n:(t+1)*n], p.Steps[lv[j0+t]], off, out[t*n:(t+1)*n], rec)
				}
				for b := b0; b < b1; b++ {
					for t := range tw {
						ci := b*width + j0 + t
						copy(y[ci*k:(ci+1)*k], out[t*n+(b-b0)*k:])
					}
				}
				b0 = b1
			}
		}
		return nil
	})
	return y
}

// trellisTile is how many columns trellisQuantize gathers at once: 16
// chunks of 16 float32 are 1 KiB read in one sweep.
const trellisTile = 16
