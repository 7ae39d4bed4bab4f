package convert

import (
	"math"

	"nwc/codec"
)

// Rate control. A file's bits per weight are counted the honest way, from
// the whole file: (file size − bytes of the tensors of rank < 2) × 8 /
// elements of the tensors of rank ≥ 2, so scales, tables, blobs, index and
// padding all count, and a matrix kept lossless pays for itself. Rate
// control encodes the checkpoint into a discarding writer (which gives the
// exact file size without touching the disk), gives each lossy matrix a
// byte budget proportional to its target bits × elements out of what the
// rest of the file leaves, and searches each matrix's quantizer step for
// its budget. A few passes settle the share of the rest of the file.

const (
	maxPasses     = 4
	fileTolerance = 0.004 // relative error of the file's bits per weight
	stepTolerance = 0.001 // relative error of one tensor's budget
	maxSearch     = 16    // encodes per tensor per pass
)

// BitsPerWeight computes the honest rate of a file from its size, the
// stored bytes of its tensors of rank < 2 and the elements of the others.
func BitsPerWeight(fileSize int64, smallBytes, matrixElements uint64) float64 {
	if matrixElements == 0 {
		return 0
	}
	return float64(uint64(fileSize)-smallBytes) * 8 / float64(matrixElements)
}

func (c *conversion) bitsPerWeight(fileSize int64) float64 {
	var small, elems uint64
	for _, it := range c.items {
		if len(it.shape) < 2 {
			small += it.stored
		} else {
			elems += it.numel
		}
	}
	return BitsPerWeight(fileSize, small, elems)
}

// controlRate sets each lossy matrix's step so the file hits its target.
func (c *conversion) controlRate() error {
	var target float64 // bytes the matrices and overheads may take
	var weight float64 // Σ bits × elements of the searchable matrices
	for _, it := range c.items {
		if len(it.shape) < 2 {
			continue
		}
		b := c.o.Bits
		if it.bits > 0 {
			b = it.bits
			weight += it.bits * float64(it.numel)
		}
		target += b * float64(it.numel) / 8
	}
	if weight == 0 {
		return nil
	}
	var other float64 // file bytes outside the searchable matrices, beyond the small tensors
	for c.passes = 0; c.passes < maxPasses; c.passes++ {
		budget := target - other
		for _, it := range c.items {
			if it.bits > 0 && len(it.shape) >= 2 {
				it.target = max(budget*it.bits*float64(it.numel)/weight, 1)
			}
		}
		size, err := c.dryRun()
		if err != nil {
			return err
		}
		var lossy, small float64
		for _, it := range c.items {
			switch {
			case len(it.shape) < 2:
				small += float64(it.stored)
			case it.bits > 0:
				lossy += float64(it.cost)
			}
		}
		got := float64(size) - small
		other = got - lossy
		if math.Abs(got-target) <= fileTolerance*target {
			c.passes++
			break
		}
	}
	// Freeze the steps found, so the final pass writes exactly what the
	// last dry run measured.
	for _, it := range c.items {
		it.target = 0
	}
	return nil
}

// searchStep encodes t at the step that makes its sections cost about
// it.target bytes. The cost falls as the step grows, by about numel/8
// bytes per doubling at high rates; a secant search on log2(step), kept
// inside a bracket, usually needs three to five encodes.
func searchStep(cd codec.Codec, t *codec.Tensor, o *codec.EncodeOptions, it *item, align uint8) (*codec.Encoded, error) {
	var (
		best              *codec.Encoded
		bestStep, bestErr float64
		bestCost          uint64
		lo, hi            = math.Inf(-1), math.Inf(1) // log2 steps with cost above / below target
		x                 = math.Log2(it.step)
		px, pf            float64
		havePrev          bool
	)
	for i := 0; i < maxSearch; i++ {
		o.Step = math.Exp2(x)
		enc, err := cd.Encode(t, o)
		if err != nil {
			return nil, err
		}
		cst := cost(enc, align)
		f := float64(cst) - it.target
		if e := math.Abs(f); best == nil || e < bestErr {
			best, bestStep, bestErr, bestCost = enc, o.Step, e, cst
		}
		if math.Abs(f) <= stepTolerance*it.target || hi-lo < 1e-4 {
			break
		}
		if f > 0 {
			lo = max(lo, x)
		} else {
			hi = min(hi, x)
		}
		slope := -float64(it.numel) / 8 // bytes per doubling of the step
		if havePrev && x != px && (f-pf)/(x-px) < 0 {
			slope = (f - pf) / (x - px)
		}
		nx := x - f/slope
		if !(nx > lo && nx < hi) { // outside the bracket: bisect, or step out
			switch {
			case math.IsInf(lo, -1):
				nx = hi - 2
			case math.IsInf(hi, 1):
				nx = lo + 2
			default:
				nx = (lo + hi) / 2
			}
		}
		px, pf, havePrev = x, f, true
		x = nx
	}
	it.step, it.cost = bestStep, bestCost
	return best, nil
}
