package neural

import (
	"github.com/nwcodec/nwc/codec/chunk"
)

// A ChunkSeq walks the trellis sequences of a chunk-major array of latents
// (rows of chunks, width chunks per row): with Params.Trellis, each column
// of each chunk group is one sequence from state 0, running through the
// column's chunks top to bottom.
type ChunkSeq struct {
	width int
	// starts[b] says chunk row b of the array begins a group; nil means
	// only row 0 does.
	starts []bool
	st     []uint8 // each column's state
}

// NewChunkSeq returns a ChunkSeq over width chunks per chunk row, where
// starts[b] says chunk row b begins a group (nil: only row 0 does).
func NewChunkSeq(width int, starts []bool) *ChunkSeq {
	return &ChunkSeq{width: width, starts: starts, st: make([]uint8, width)}
}

// GroupStarts returns, for the chunk rows of a matrix of rows rows, which
// begin a group whose rows end at ends (chunk.GroupRows).
func GroupStarts(rows int, ends []int) []bool {
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

// Begin returns the state of chunk ci's column, ready for chunk ci: reset
// to 0 if ci's chunk row starts a group.
func (q *ChunkSeq) Begin(ci int) *uint8 {
	b, j := ci/q.width, ci%q.width
	if b == 0 && q.starts == nil || q.starts != nil && q.starts[b] {
		q.st[j] = 0
	}
	return &q.st[j]
}
