package neural

import (
	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/codec/trellis"
)

// A chunkSeq walks the trellis sequences of a chunk-major array of latents
// (rows of chunks, width chunks per row): with params.trellis, each column
// of each chunk group is one sequence from state 0, running through the
// column's chunks top to bottom.
type chunkSeq struct {
	width int
	// starts[b] says chunk row b of the array begins a group; nil means
	// only row 0 does.
	starts []bool
	st     []uint8 // each column's state
}

func newChunkSeq(width int, starts []bool) *chunkSeq {
	return &chunkSeq{width: width, starts: starts, st: make([]uint8, width)}
}

// groupStarts returns, for the chunk rows of a matrix of rows rows, which
// begin a group whose rows end at ends (chunk.GroupRows).
func groupStarts(rows int, ends []int) []bool {
	s := make([]bool, chunk.Chunks(rows))
	r0 := 0
	for _, r1 := range ends {
		if r0 < rows {
			s[r0/chunk.Rows] = true
		}
		r0 = r1
	}
	return s
}

// begin returns the state array ready for chunk ci of the array: the
// column's state, reset to 0 if ci's chunk row starts a group.
func (q *chunkSeq) begin(ci int) *uint8 {
	b, j := ci/q.width, ci%q.width
	if b == 0 && q.starts == nil || q.starts != nil && q.starts[b] {
		q.st[j] = 0
	}
	return &q.st[j]
}

// trellisQuantize chooses the latents of the chunk-major array x (width
// chunks per chunk row, levels lv) by the Viterbi search of package
// trellis, one sequence per column and group (starts as in chunkSeq).
func trellisQuantize(x []float32, lv []uint8, p *params, width int, starts []bool) []int32 {
	const k = chunk.Rows
	y := make([]int32, len(x))
	nb := len(lv) / width
	off := float32(float32(p.offset) / 256)
	var (
		tq       trellis.Quantizer
		seq, rec []float32
		out      []int32
	)
	for j := range width {
		// Every chunk of a column has the column's level.
		s := p.steps[lv[j]]
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
