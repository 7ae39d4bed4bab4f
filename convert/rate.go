package convert

import (
	"context"
	"math"

	"github.com/nwcodec/nwc/codec"
)

// Rate control. A file's bits per weight are counted the honest way, from
// the whole file: (file size − bytes of the tensors of rank < 2) × 8 /
// elements of the tensors of rank ≥ 2, so scales, tables, blobs, index and
// padding all count, and a matrix kept lossless pays for itself.
//
// Every lossy matrix is coded with one quantizer step in units of its
// columns' RMS (times its bit-allocation factor), so the normalized
// distortion is the same everywhere: for a fixed file size this spends
// bits where they buy the most, which equal bits per matrix does not (on
// stories260K at 5 bits per weight equal bits gave +10 % nll, one step
// +3.6 %). Rate control finds that step one of two ways (RateMode). The
// exact search, for small checkpoints, encodes the checkpoint into a
// discarding writer, which gives the exact file size without touching the
// disk, and moves the step by a secant search on log(step) kept inside a
// bracket; matrices with a --tensor-bits override get their own byte
// budget instead, and their step is searched per matrix. The rate model
// (ratemodel.go), for large ones, predicts every matrix's size from row
// samples and writes the file in one pass.

const (
	maxPasses     = 10
	fileTolerance = 0.002 // relative error of the file's bits per weight
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
func (c *conversion) controlRate(ctx context.Context) error {
	c.rate = nil
	var target float64 // bytes the matrices and overheads may take
	var free, freeElems float64
	for _, it := range c.items {
		if len(it.shape) < 2 {
			continue
		}
		b := c.o.Bits
		if it.bits > 0 {
			b = it.bits
			if it.fixed {
				it.target = max(it.bits*float64(it.numel)/8, 1)
			} else {
				free++
				freeElems += float64(it.numel)
			}
		}
		target += b * float64(it.numel) / 8
	}
	if c.o.Bits == 0 || (free == 0 && !c.anyFixed()) {
		return nil
	}
	if c.useModel() {
		return c.modelRate(ctx, target)
	}
	// x is log2 of the file's step; each free matrix uses x + log2(factor).
	x := math.Log2(c.baseStep())
	search := newSecant(-freeElems/8, 1) // bytes per doubling of the step, at high rates
	bestErr := math.Inf(1)
	fixedSteps := make([]float64, len(c.items))
	for c.passes = 0; c.passes < maxPasses; {
		for _, it := range c.items {
			if it.bits > 0 && !it.fixed && len(it.shape) >= 2 {
				it.step = math.Exp2(x) * it.factor
			}
		}
		size, err := c.dryRun(ctx)
		if err != nil {
			return err
		}
		c.passes++
		var small float64
		for _, it := range c.items {
			if len(it.shape) < 2 {
				small += float64(it.stored)
			}
		}
		f := float64(size) - small - target
		if e := math.Abs(f) / target; e < bestErr {
			bestErr = e
			for i, it := range c.items {
				fixedSteps[i] = it.step
			}
		}
		if bestErr <= fileTolerance || free == 0 {
			break
		}
		x = search.next(x, f)
	}
	// Freeze the steps of the best pass, so the final pass writes exactly
	// what that dry run measured.
	for i, it := range c.items {
		it.target = 0
		if it.bits > 0 {
			it.step = fixedSteps[i]
		}
	}
	return nil
}

// useModel reports whether rate control uses the rate model.
func (c *conversion) useModel() bool {
	switch c.o.Rate {
	case RateExact:
		return false
	case RateModel:
		return true
	}
	var n uint64
	for _, it := range c.items {
		if stepped(it) {
			n += it.numel
		}
	}
	if g := c.o.Guidance; g != nil && g.Calib != nil {
		return n > ExactRateGuidedMaxWeights
	}
	return n > ExactRateMaxWeights
}

func (c *conversion) anyFixed() bool {
	for _, it := range c.items {
		if it.fixed {
			return true
		}
	}
	return false
}

// baseStep is where the search starts: the user's step, else the codec's
// default.
func (c *conversion) baseStep() float64 {
	for _, it := range c.items {
		if it.bits > 0 && !it.fixed {
			return it.step / it.factor
		}
	}
	return 1
}

// searchStep encodes t at the step that makes its sections take about
// it.target bytes, padding aside. The cost falls as the step grows, by about numel/8
// bytes per doubling at high rates; a secant search on log2(step), kept
// inside a bracket, usually needs three to five encodes.
func searchStep(cd codec.Encoder, t *codec.Tensor, o *codec.EncodeOptions, it *item) (*codec.Encoded, error) {
	var (
		best              *codec.Encoded
		bestStep, bestErr float64
		x                 = math.Log2(it.step)
		search            = newSecant(-float64(it.numel)/8, 2) // bytes per doubling of the step
	)
	for i := 0; i < maxSearch; i++ {
		o.Step = math.Exp2(x)
		enc, err := cd.Encode(t, o)
		if err != nil {
			return nil, err
		}
		cst := storedBytes(enc) // padding is part of the rest of the file
		f := float64(cst) - it.target
		if e := math.Abs(f); best == nil || e < bestErr {
			best, bestStep, bestErr = enc, o.Step, e
		}
		if math.Abs(f) <= stepTolerance*it.target || search.hi-search.lo < 1e-4 {
			break
		}
		x = search.next(x, f)
	}
	it.step = bestStep
	return best, nil
}

// secant finds the root of a falling function f(x) of x = log2(step): a
// secant step from the last two points (or the high-rate slope at first),
// kept inside the bracket of points seen on either side, bisecting or
// stepping out by jump when it would leave it.
type secant struct {
	lo, hi   float64 // x with f > 0 / f < 0
	slope    float64 // initial slope estimate
	jump     float64
	px, pf   float64
	havePrev bool
}

func newSecant(slope, jump float64) *secant {
	return &secant{lo: math.Inf(-1), hi: math.Inf(1), slope: slope, jump: jump}
}

// next returns the next x to try after f(x) = f.
func (s *secant) next(x, f float64) float64 {
	if f > 0 {
		s.lo = max(s.lo, x)
	} else {
		s.hi = min(s.hi, x)
	}
	slope := s.slope
	if s.havePrev && x != s.px && (f-s.pf)/(x-s.px) < 0 {
		slope = (f - s.pf) / (x - s.px)
	}
	nx := x - f/slope
	if !(nx > s.lo && nx < s.hi) {
		switch {
		case math.IsInf(s.lo, -1):
			nx = s.hi - s.jump
		case math.IsInf(s.hi, 1):
			nx = s.lo + s.jump
		default:
			nx = (s.lo + s.hi) / 2
		}
	}
	s.px, s.pf, s.havePrev = x, f, true
	return nx
}
