package spec

import "math"

// NWCChunkRows is the number of consecutive rows of one column in a chunk
// of the neural codec: one decoder evaluation reconstructs them.
const NWCChunkRows = 16

// An NWCTensor is everything the neural codec ("nwc", codec/neural/
// FORMAT.md §7.7) needs to reconstruct one tensor, already parsed: the
// entropy decoding of the latents is plain rANS and the container parsing
// is specified elsewhere; what is normative here is the arithmetic.
type NWCTensor struct {
	Rows, Cols int // the coded matrix (after any transposition)
	// Steps and Features are the per-level step Δ_q and decoder feature
	// f_q derived from the tensor's parameters (FORMAT.md §7.7.3).
	Steps, Features [4]float32
	// Plain is true when the tensor skips the decoder network; Offset is
	// then the centroid offset δ in steps.
	Plain  bool
	Offset float32
	// Trellis (plain tensors only) says the latents are trellis-coded:
	// their offset depends on a state (FORMAT.md §7.7.5) that runs down
	// each column and restarts at the first row of every chunk group,
	// GroupStarts (row 0 and the end of each group but the last; nil
	// means row 0 only).
	Trellis     bool
	GroupStarts []int
	// Scales holds the fp16 column scales widened to float32.
	Scales []float32
	// Levels holds each column's importance level (all 0 if nil).
	Levels []uint8
	// Latents holds every chunk's 16 latents: rows of chunks top to
	// bottom, columns left to right within a row of chunks, the chunk's
	// rows top to bottom, with 0 for the padding rows of a ragged last
	// chunk (which the payload does not code).
	Latents []int32
	// Decoder is the blob's decoder network and Embed its embedding.
	Decoder []MLPLayer
	Embed   [][]float32
}

// NWCReconstruct returns the decoded Rows×Cols matrix, row-major, before
// conversion to the tensor's dtype. For the chunk of column j at rows
// [16b, 16b+16) with level q and latents y_0..y_15, every value an IEEE 754
// binary32 rounded to nearest even, δ = Offset:
//
//	plain:  x̂_i = 0 if y_i = 0, else sign(y_i)·fl(fl(|y_i| − δ_i) · Δ_q)
//	        δ_i = δ, or with Trellis δ + ½ when the column's state σ ≥ 2;
//	        σ is 0 at every group start and becomes next[σ][y_i mod 2]
//	        after each latent, next = [[0 2] [2 0] [1 3] [3 1]]
//	else:   in_i = fl(y_i · Δ_q) for i < 16, in_16 = feature_q,
//	        d = MLPForward(decoder, embed, q, in),
//	        x̂_i = fl(fl(y_i + d_i) · Δ_q)
//	w_i = fl(x̂_i · s_j), a NaN made the canonical NaN 0x7FC00000
//
// where y_i is converted to binary32 exactly or, beyond 2^24, rounded to
// nearest even. Rows past the end of the matrix are dropped.
func NWCReconstruct(t *NWCTensor) []float32 {
	trellisNext := [4][2]int{{0, 2}, {2, 0}, {1, 3}, {3, 1}}
	const k = NWCChunkRows
	out := make([]float32, t.Rows*t.Cols)
	nb := (t.Rows + k - 1) / k
	states := make([]int, t.Cols)
	start := map[int]bool{0: true}
	for _, r := range t.GroupStarts {
		start[r] = true
	}
	for b := range nb {
		if start[b*k] {
			clear(states)
		}
		for j := range t.Cols {
			q := 0
			if t.Levels != nil {
				q = int(t.Levels[j])
			}
			y := t.Latents[(b*t.Cols+j)*k : (b*t.Cols+j+1)*k]
			step := t.Steps[q]
			xh := make([]float32, k)
			if t.Plain {
				state := states[j]
				for i := range k {
					off := t.Offset
					if t.Trellis {
						if state >= 2 {
							off += 0.5
						}
						state = trellisNext[state][y[i]&1]
					}
					if y[i] == 0 {
						continue
					}
					a := int64(y[i])
					if a < 0 {
						a = -a
					}
					v := float32(float32(a)-off) * step
					if y[i] < 0 {
						v = -v
					}
					xh[i] = v
				}
				states[j] = state
			} else {
				in := make([]float32, k+1)
				for i := range k {
					in[i] = float32(y[i]) * step
				}
				in[k] = t.Features[q]
				d := MLPForward(t.Decoder, t.Embed, q, in)
				for i := range k {
					xh[i] = float32(float32(y[i])+d[i]) * step
				}
			}
			for i := range k {
				r := b*k + i
				if r < t.Rows {
					w := xh[i] * t.Scales[j]
					if w != w {
						w = math.Float32frombits(MLPCanonicalNaN)
					}
					out[r*t.Cols+j] = w
				}
			}
		}
	}
	return out
}
