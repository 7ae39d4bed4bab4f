package convert

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/writer"
)

// The rate model. Encoding a large checkpoint several times to find its
// step costs several times the conversion, so above ExactRateMaxWeights
// lossy weights rate control predicts each tensor's size instead:
//
//  1. Every lossy matrix is sampled: about 1/sampleDivisor of its chunk
//     rows (16-row blocks, spread evenly over the matrix, every column
//     kept) form a sub-matrix that the codec encodes with the matrix's
//     own options at two steps, sampleSpread apart in log2 around a
//     first guess from the target. Every column is scaled as in the
//     whole matrix (the sample's RMS is corrected through
//     EncodeOptions.ScaleFactors), so the sample sees the same
//     normalized values, the same per-column steps and the same
//     importance levels, Hessian and column factors; its payload scales
//     with its rows, while its side information (scales, tables,
//     levels) is counted once, as the whole matrix stores it once.
//     Tensors coded losslessly are encoded whole when small and sampled
//     the same way otherwise. Every sample is coded as an estimate
//     (codec.EncodeOptions.Estimate): nwc rounds it instead of choosing
//     between rounding, the trellis and the learned transform, which
//     codes a sample five to seven times; whichever it chooses in the
//     final pass costs about what rounding does at the same step.
//  2. The file's step is solved from the models (piecewise linear in
//     log2 step through the sampled points), together with the index,
//     blob and padding, which a writer fed with placeholder sections of
//     the predicted sizes measures.
//  3. Every matrix is sampled once more, localSpread either side of its
//     solved step, and the step is solved again through the four points
//     (and sampled at the new solution, if it moved outside that
//     segment, up to maxExtraSamples times).
//  4. One final pass writes the file. Each free matrix's step is fixed
//     just before it is encoded from the bytes the tensors before it
//     actually took: tensor k sees only tensors below k − feedbackLag,
//     whatever the number of workers, so the file does not depend on
//     them. The remaining matrices absorb the error so far, with the
//     ratio of actual to predicted bytes seen so far (shrunk toward 1)
//     applied to their predictions, within maxFeedbackShift of the
//     solved step, but only once the file is predicted to miss its
//     target by more than feedbackBand, and then only back to that band. A matrix
//     whose encoding misses its planned size by more than missTolerance
//     of the file is encoded again at secant steps, up to three more times (in practice
//     only a matrix holding a large share of a small model).
//
// Sampling costs well under 4/sampleDivisor of a full encode, rounding
// being the cheapest coding. Matrices with a
// --tensor-bits budget are solved alone against their budget and, if
// their final encode misses it by more than budgetTolerance, encoded
// again at secant steps (encodeNear).

// RateMode selects how rate control reaches Options.Bits.
type RateMode int

const (
	// RateAuto searches exactly for checkpoints of at most
	// ExactRateMaxWeights lossy weights (ExactRateGuidedMaxWeights with
	// a calibration model) and uses the rate model above.
	RateAuto RateMode = iota
	// RateExact encodes the checkpoint into a discarding writer once per
	// step of a secant search until the file is within 0.2 % of its
	// target (usually three to five passes), then writes it.
	RateExact
	// RateModel predicts each matrix's size from row samples and writes
	// the file in one pass with feedback.
	RateModel
)

// ExactRateMaxWeights is the number of lossy weights up to which RateAuto
// searches exactly: a few passes over a few million weights take seconds,
// and small files need the precision, as their index and tables are a
// larger share of the file than in big ones.
const ExactRateMaxWeights = 1 << 22

// ExactRateGuidedMaxWeights is ExactRateMaxWeights for conversions with a
// calibration model: their forward passes cost far more than a few
// encodes (on stories15M everything before the final pass took 209.6 s
// with the exact search at 2 bits and 210.1 s with the model at 3), and
// one step for every matrix
// allocates better than the model's plan where a large matrix misses it
// (stories15M's embedding with token steps, see encodeNear).
const ExactRateGuidedMaxWeights = 1 << 26

const (
	// sampleDivisor: a sample holds about 1/sampleDivisor of a matrix's
	// chunk rows.
	sampleDivisor = 32
	// minSampleWeights is the smallest sample; a matrix not at least
	// twice as large is encoded whole.
	minSampleWeights = 1 << 15
	// wholeLosslessWeights: lossless tensors up to this size are encoded
	// whole while sampling.
	wholeLosslessWeights = 1 << 20
	// sampleSpread is the distance in log2 step of the first two
	// samples from the first guess, on either side, and localSpread that
	// of the second two from the first solution: rate curves are not
	// always smooth (stories15M's embedding under ecsq loses a fifth of
	// its bits between steps 2^-0.5 and 2^-0.25), so the final steps are
	// read off a short segment.
	sampleSpread = 0.5
	localSpread  = 0.1
	// maxExtraSamples bounds the samples taken at the solution when it
	// falls outside the local segment.
	maxExtraSamples = 2
	// feedbackLag: the step of tensor k depends on the sizes of tensors
	// below k − feedbackLag only, so up to about feedbackLag tensors
	// can be in the pipeline at once.
	feedbackLag = 16
	// maxFeedbackShift bounds how far feedback moves a matrix's step from
	// the solved one, in log2 (about as many bits per weight): steps
	// spread by ±δ cost about 4·var(δ) dB of SQNR at equal rate.
	maxFeedbackShift = 0.15
	// feedbackBand is the relative error of the file's predicted size
	// that feedback leaves alone: on ppocr_det (whose few-row
	// convolutions sample poorly) correcting a 0.8 % error fully cost
	// 0.1 dB of SQNR at equal rate.
	feedbackBand = 0.004
	// maxRatioShift bounds the ratio of actual to predicted sizes applied
	// to the matrices still to come.
	maxRatioShift = 0.05
	// budgetTolerance is the relative error of a --tensor-bits budget
	// that makes the rate model's final pass encode a matrix once more.
	budgetTolerance = 0.01
	// missTolerance is the error, relative to the file's target, by
	// which a free matrix may miss what feedback planned for it before
	// it is encoded once more: a large matrix near the end of the file
	// leaves too few bytes after it to absorb its error.
	missTolerance = 0.0025
)

// rateFeedback can be turned off by tests measuring the model alone.
var rateFeedback = true

// A ratePoint is a predicted size in bytes at a log2 step.
type ratePoint struct{ x, bytes float64 }

// A rateModel predicts one tensor's stored bytes.
type rateModel struct {
	pts  []ratePoint // increasing x; one point at x 0 for tensors without a step
	skel skeleton
	// slope is the least fall in bytes per unit of x used to extrapolate
	// and to keep the model falling.
	slope float64
}

// A skeleton is what an encoding looks like to the index: everything but
// the group payloads, whose total size the model predicts.
type skeleton struct {
	params []byte
	view   [2]uint64
	ends   []uint64
	aux    []codec.NamedBytes
	blob   *codec.BlobData
}

func (s *skeleton) auxBytes() float64 {
	var n int
	for _, a := range s.aux {
		n += len(a.Data)
	}
	return float64(n)
}

// add inserts a point, replacing one at the same step.
func (m *rateModel) add(p ratePoint) {
	i, found := slices.BinarySearchFunc(m.pts, p.x, func(q ratePoint, x float64) int {
		switch {
		case math.Abs(q.x-x) < 1e-9:
			return 0
		case q.x < x:
			return -1
		}
		return 1
	})
	if found {
		m.pts[i] = p
		return
	}
	m.pts = slices.Insert(m.pts, i, p)
}

// at returns the predicted bytes at log2 step x: linear between the
// points, along the end segments (falling at least by slope) outside.
func (m *rateModel) at(x float64) float64 {
	p := m.pts
	if len(p) == 1 {
		return max(p[0].bytes-m.slope*(x-p[0].x), 1)
	}
	seg := func(i int) float64 { // slope of segment i, falling
		return min((p[i+1].bytes-p[i].bytes)/(p[i+1].x-p[i].x), -m.slope)
	}
	var y float64
	switch n := len(p); {
	case x <= p[0].x:
		y = p[0].bytes + seg(0)*(x-p[0].x)
	case x >= p[n-1].x:
		y = p[n-1].bytes + seg(n-2)*(x-p[n-1].x)
	default:
		i := 0
		for x > p[i+1].x {
			i++
		}
		t := (x - p[i].x) / (p[i+1].x - p[i].x)
		y = p[i].bytes + t*(p[i+1].bytes-p[i].bytes)
	}
	return max(y, 1)
}

// ratePlan is the rate model's solution and the state of the final pass's
// feedback.
type ratePlan struct {
	c        *conversion
	x        float64   // solved log2 of the file's step
	planned  []float64 // each tensor's own log2 step as planned
	overhead float64   // index, blob, preamble and padding
	target   float64   // bytes the matrices and overheads may take
	// freeBytes is the free matrices' predicted bytes at the solution.
	freeBytes float64
}

// stepped reports whether rate control chooses the tensor's step.
func stepped(it *item) bool { return it.bits > 0 && len(it.shape) >= 2 }

// free reports whether the tensor's step follows the file's.
func free(it *item) bool { return stepped(it) && !it.fixed }

// ownX is the tensor's log2 step when the file's is x.
func ownX(it *item, x float64) float64 { return x + math.Log2(it.factor) }

// modelRate sets the steps by the rate model; target is what the
// matrices and overheads may take, in bytes.
func (c *conversion) modelRate(ctx context.Context, target float64) error {
	var base float64 = 0.25
	if cd, err := codec.LookupEncoder(c.o.Codec); err == nil {
		if s, ok := cd.(codec.Stepper); ok {
			base = s.DefaultStep()
		}
	}
	// The default steps give about 4 bits per weight, and each bit fewer
	// doubles the step.
	guess := func(bits float64) float64 { return math.Log2(base) + 4 - bits }
	p := &ratePlan{c: c, target: target, planned: make([]float64, len(c.items))}
	x0 := guess(c.o.Bits)
	for _, it := range c.items {
		it.model = nil
	}
	first := func(it *item) []float64 {
		if !stepped(it) {
			return nil
		}
		x := ownX(it, x0)
		if it.fixed {
			x = guess(it.bits)
		}
		return []float64{x - sampleSpread, x + sampleSpread}
	}
	if err := c.sample(ctx, 1, c.items, first); err != nil {
		return err
	}
	if err := p.solve(); err != nil {
		return err
	}
	var again []*item
	for _, it := range c.items {
		if stepped(it) {
			again = append(again, it)
		}
	}
	second := func(it *item) []float64 {
		x := ownX(it, p.x)
		if it.fixed {
			x = p.fixedX(it)
		}
		return []float64{x - localSpread, x + localSpread}
	}
	if err := c.sample(ctx, 2, again, second); err != nil {
		return err
	}
	lo, hi := p.x-localSpread, p.x+localSpread
	if err := p.solve(); err != nil {
		return err
	}
	// A rate curve with a cliff between the first samples can move the
	// solution out of the local segment; sample there too.
	for pass := 3; (p.x < lo || p.x > hi) && pass < 3+maxExtraSamples; pass++ {
		at := func(it *item) []float64 {
			if it.fixed {
				return []float64{p.fixedX(it)}
			}
			return []float64{ownX(it, p.x)}
		}
		if err := c.sample(ctx, pass, again, at); err != nil {
			return err
		}
		lo, hi = min(lo, p.x), max(hi, p.x)
		if err := p.solve(); err != nil {
			return err
		}
	}
	for k, it := range c.items {
		if !stepped(it) {
			continue
		}
		x := ownX(it, p.x)
		if it.fixed {
			x = p.fixedX(it)
			it.target = max(it.bits*float64(it.numel)/8, 1)
		}
		p.planned[k] = x
		it.step = math.Exp2(x)
		if free(it) {
			p.freeBytes += it.model.at(x)
		}
	}
	var elems uint64
	for _, it := range c.items {
		if len(it.shape) >= 2 {
			elems += it.numel
		}
	}
	c.modelBits = (p.counted(p.x) + p.overhead) * 8 / float64(elems)
	c.rate = p
	return nil
}

// atSteps returns the bits per weight the models predict for the file at
// every matrix's current step.
func (p *ratePlan) atSteps() float64 {
	var n float64
	var elems uint64
	for _, it := range p.c.items {
		if len(it.shape) < 2 {
			continue
		}
		elems += it.numel
		x := 0.0
		if stepped(it) {
			x = math.Log2(it.step)
		}
		n += it.model.at(x)
	}
	return (n + p.overhead) * 8 / float64(elems)
}

// fixedX solves a --tensor-bits matrix's own model for its budget.
func (p *ratePlan) fixedX(it *item) float64 {
	budget := max(it.bits*float64(it.numel)/8, 1)
	return solveFalling(func(x float64) float64 { return it.model.at(x) - budget }, -30, 20)
}

// counted predicts the bytes of the tensors that count in the rate (rank
// ≥ 2) with the free matrices at file step x.
func (p *ratePlan) counted(x float64) float64 {
	var n float64
	for _, it := range p.c.items {
		if len(it.shape) < 2 {
			continue
		}
		switch {
		case free(it):
			n += it.model.at(ownX(it, x))
		case it.fixed:
			n += it.model.at(p.fixedX(it))
		default:
			n += it.model.at(0)
		}
	}
	return n
}

// solve finds the file's step from the models and measures the overhead
// there.
func (p *ratePlan) solve() error {
	p.overhead = 0
	for range 2 {
		p.x = solveFalling(func(x float64) float64 { return p.counted(x) + p.overhead - p.target }, -30, 20)
		oh, err := p.estimateOverhead()
		if err != nil {
			return err
		}
		p.overhead = oh
	}
	return nil
}

// estimateOverhead writes every tensor's skeleton with placeholder
// payloads of the predicted sizes into a discarding writer: what the file
// takes beyond the tensors' own sections (index, blob, preamble,
// padding).
func (p *ratePlan) estimateOverhead() (float64, error) {
	c := p.c
	w, err := writer.New(io.Discard, &c.o.Writer)
	if err != nil {
		return 0, err
	}
	if err := c.begin(w); err != nil {
		return 0, err
	}
	// Placeholders are cut from noise at varying offsets, so their CRCs
	// differ and the index compresses as the real one will.
	const spread = 4096
	var noise []byte
	var state uint64
	var sections float64
	for _, it := range c.items {
		var x float64
		switch {
		case free(it):
			x = ownX(it, p.x)
		case it.fixed:
			x = p.fixedX(it)
		}
		sk := &it.model.skel
		total := it.model.at(x)
		payload := max(total-sk.auxBytes(), float64(len(sk.ends)))
		sections += payload + sk.auxBytes()
		e := &codec.Encoded{Params: sk.params, View: sk.view, Aux: sk.aux, Blob: sk.blob}
		left := int(payload)
		for i, end := range sk.ends {
			n := max(left/(len(sk.ends)-i), 1)
			left -= n
			for len(noise) < n+spread {
				state = splitmix(state)
				noise = binary.LittleEndian.AppendUint64(noise, state)
			}
			state = splitmix(state)
			off := int(state % spread)
			e.Groups = append(e.Groups, codec.EncodedGroup{End: end, Data: noise[off : off+n]})
		}
		if err := w.WriteEncoded(it.info.Name, it.info.DType, it.shape, it.codec, e); err != nil {
			return 0, fmt.Errorf("convert: estimating the index: %w", err)
		}
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	return float64(w.Size()) - sections, nil
}

// solveFalling returns the root of a falling function in [lo, hi], or the
// bound it lies beyond.
func solveFalling(f func(float64) float64, lo, hi float64) float64 {
	if f(lo) <= 0 {
		return lo
	}
	if f(hi) >= 0 {
		return hi
	}
	for range 60 {
		mid := (lo + hi) / 2
		if f(mid) > 0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

// plan fixes the step of free matrix k from the sizes of the tensors
// below k − feedbackLag (see the rate model above).
func (p *ratePlan) plan(k int) error {
	c := p.c
	it := c.items[k]
	if !free(it) {
		return nil
	}
	done := max(k-feedbackLag, 0)
	var known, actual, predicted float64
	for j, jt := range c.items[:done] {
		if len(jt.shape) < 2 {
			continue
		}
		known += float64(jt.stored)
		if free(jt) {
			actual += float64(jt.stored)
			predicted += jt.model.at(p.planned[j])
		}
	}
	// The ratio starts from a prior of 1 weighing like a quarter of the
	// free matrices' bytes: it is there for the model's systematic error
	// (samples under-predict by a few tenths of a percent), and a noisy
	// ratio would move every later step, which costs quality.
	prior := p.freeBytes / 4
	rho := min(max((actual+prior)/(predicted+prior), 1-maxRatioShift), 1+maxRatioShift)
	var pending float64
	for j := done; j < k; j++ {
		jt := c.items[j]
		if len(jt.shape) < 2 {
			continue
		}
		y := jt.model.at(p.planned[j])
		if free(jt) {
			y *= rho
		}
		pending += y
	}
	rest := func(x float64) float64 {
		var n float64
		for j := k; j < len(c.items); j++ {
			jt := c.items[j]
			switch {
			case len(jt.shape) < 2:
			case free(jt):
				n += rho * jt.model.at(ownX(jt, x))
			default:
				n += jt.model.at(p.planned[j])
			}
		}
		return n
	}
	// Within feedbackBand of the target the solved step stays: every
	// correction makes the steps less even, which costs quality.
	total := func(x float64) float64 { return known + pending + rest(x) + p.overhead }
	x := p.x
	switch at := total(p.x); {
	case at > p.target*(1+feedbackBand):
		x = solveFalling(func(x float64) float64 { return total(x) - p.target*(1+feedbackBand) }, p.x, p.x+maxFeedbackShift)
	case at < p.target*(1-feedbackBand):
		x = solveFalling(func(x float64) float64 { return total(x) - p.target*(1-feedbackBand) }, p.x-maxFeedbackShift, p.x)
	}
	p.planned[k] = ownX(it, x)
	it.step = math.Exp2(p.planned[k])
	it.target = rho * it.model.at(p.planned[k])
	return nil
}

// feedback returns the final pass's plan function, nil without the rate
// model.
func (c *conversion) feedback() func(k int) error {
	if c.rate == nil || !rateFeedback {
		return nil
	}
	return c.rate.plan
}

// encodeBudget encodes a matrix at its planned step and, when that
// misses its byte budget it.target (a --tensor-bits budget, or the size
// feedback planned) by more than budgetTolerance of it or missTolerance
// of the file, once more at the step a secant through the model's slope
// gives; the closer wins.
func (c *conversion) encodeBudget(cd codec.Encoder, t *codec.Tensor, o *codec.EncodeOptions, it *item) (*codec.Encoded, error) {
	tol := budgetTolerance * it.target
	if !it.fixed {
		tol = missTolerance * c.rate.target
	}
	x := math.Log2(it.step)
	const h = 0.05
	slope := min((it.model.at(x+h)-it.model.at(x-h))/(2*h), -it.model.slope)
	enc, step, err := encodeNear(cd, t, o, it.step, it.target, tol, slope)
	it.step = step
	return enc, err
}

// sample builds or extends the rate models of its, encoding each
// stepped matrix's sample at the steps xs gives.
func (c *conversion) sample(ctx context.Context, pass int, its []*item, xs func(*item) []float64) error {
	pr := c.progress(PhaseRateModel, pass, its)
	type result struct {
		pts     []ratePoint
		skel    skeleton
		weights uint64
	}
	return runOrdered(ctx, len(its), c.jobs(), -1, nil, 0, nil,
		func(k int) (result, error) {
			it := its[k]
			pts, sk, n, err := c.sampleTensor(it, xs(it))
			if err != nil {
				return result{}, fmt.Errorf("convert: rate model of %q: %w", it.info.Name, err)
			}
			return result{pts, sk, n}, nil
		},
		func(k int, r result) error {
			it := its[k]
			if it.model == nil {
				it.model = &rateModel{}
				if stepped(it) {
					it.model.slope = 0.25 * float64(it.numel) / 8
				}
			}
			for _, p := range r.pts {
				it.model.add(p)
			}
			it.model.skel = r.skel
			c.sampled += r.weights
			pr(k)
			return nil
		})
}

// sampleTensor encodes a tensor's sample at each log2 step of xs (once
// without a step for tensors rate control does not step) and returns the
// predicted size of the whole tensor at each, the skeleton of the last
// encoding and the weights encoded. The samples are coded as estimates
// (codec.EncodeOptions.Estimate).
func (c *conversion) sampleTensor(it *item, xs []float64) ([]ratePoint, skeleton, uint64, error) {
	cd, err := codec.LookupEncoder(it.codec)
	if err != nil {
		return nil, skeleton{}, 0, err
	}
	var (
		sub   *codec.Tensor
		scale float64
		ends  []uint64
		view  [2]uint64
		o     *codec.EncodeOptions
	)
	if c.readsRows(it) {
		t := &codec.Tensor{Name: it.info.Name, DType: it.info.DType, Shape: it.shape}
		if o, err = c.options(it, t); err != nil {
			return nil, skeleton{}, 0, err
		}
		sub, scale, ends, view, err = c.subRows(it, o)
	} else {
		var data []byte
		if data, err = c.readTensor(it); err != nil {
			return nil, skeleton{}, 0, err
		}
		t := &codec.Tensor{Name: it.info.Name, DType: it.info.DType, Shape: it.shape, Data: data}
		if o, err = c.options(it, t); err != nil {
			return nil, skeleton{}, 0, err
		}
		sub, scale, ends, view, err = c.subTensor(it, t, o)
	}
	if err != nil {
		return nil, skeleton{}, 0, err
	}
	if xs == nil {
		xs = []float64{0}
	}
	var pts []ratePoint
	var sk skeleton
	var n uint64
	for _, x := range xs {
		if stepped(it) {
			o.Step = math.Exp2(x)
		}
		o.Estimate = true
		enc, err := cd.Encode(sub, o)
		if err != nil {
			return nil, skeleton{}, 0, err
		}
		n += sub.NumElements()
		var payload float64
		for _, g := range enc.Groups {
			payload += float64(len(g.Data))
		}
		sk = skeleton{params: enc.Params, view: view, aux: enc.Aux, blob: enc.Blob, ends: ends}
		if ends == nil {
			sk.view = enc.View
			for _, g := range enc.Groups {
				sk.ends = append(sk.ends, g.End)
			}
		}
		pts = append(pts, ratePoint{x: x, bytes: payload*scale + sk.auxBytes()})
	}
	return pts, sk, n, nil
}

// subTensor returns the part of t to encode for its rate model, the
// factor from its payload to the whole tensor's, and the group ends and
// view of the whole tensor (nil ends when the sample is the whole
// tensor). It may change o so that the sample is coded as the whole would
// be.
func (c *conversion) subTensor(it *item, t *codec.Tensor, o *codec.EncodeOptions) (sub *codec.Tensor, scale float64, ends []uint64, view [2]uint64, err error) {
	if len(it.shape) < 2 || it.numel < 2*minSampleWeights || (!codec.Lossy(it.codec) && it.numel <= wholeLosslessWeights) {
		return t, 1, nil, view, nil
	}
	if !codec.Lossy(it.codec) {
		// Lossless: whole rows of the stored tensor.
		rows := int(it.shape[0])
		cols := int(it.numel / it.shape[0])
		pick := sampleBlocks(rows, cols)
		if pick == nil {
			return t, 1, nil, view, nil
		}
		size := t.DType.Size()
		var b []byte
		srows := 0
		for _, r0 := range pick {
			r1 := min(r0+chunk.Rows, rows)
			b = append(b, t.Data[r0*cols*size:r1*cols*size]...)
			srows += r1 - r0
		}
		shape := append([]uint64{uint64(srows)}, it.shape[1:]...)
		ends = codec.SplitElements(it.numel, size, o.GroupBytes, 1)
		sub = &codec.Tensor{Name: t.Name, DType: t.DType, Shape: shape, Data: b}
		return sub, float64(rows) / float64(srows), ends, codec.DefaultView(it.shape), nil
	}
	lay, m, err := chunk.Load(t, o.Transposed)
	if err != nil {
		return nil, 0, nil, view, err
	}
	rows, cols := lay.Rows, lay.Cols
	pick := sampleBlocks(rows, cols)
	if pick == nil {
		return t, 1, nil, view, nil
	}
	var sm []float32
	for _, r0 := range pick {
		r1 := min(r0+chunk.Rows, rows)
		sm = append(sm, m[r0*cols:r1*cols]...)
	}
	whole := chunk.ScaleValues(chunk.Scales(m, rows, cols))
	return sampleOf(t.Name, lay, sm, whole, t.DType, o)
}

// sampleOf returns the rate model's sample of the matrix name of layout
// lay from its sampled rows sm, given its columns' RMS (fp16 values)
// whole, as subTensor does.
func sampleOf(name string, lay chunk.Layout, sm, whole []float32, dt format.DType, o *codec.EncodeOptions) (sub *codec.Tensor, scale float64, ends []uint64, view [2]uint64, err error) {
	rows, cols := lay.Rows, lay.Cols
	srows := len(sm) / cols
	// Scale every column as the whole matrix does: the sample's own RMS
	// would move each column's step by its sampling error.
	part := chunk.ScaleValues(chunk.Scales(sm, srows, cols))
	f := make([]float32, cols)
	for j := range f {
		f[j] = 1
		if o.ScaleFactors != nil {
			f[j] = o.ScaleFactors[j]
		}
		if whole[j] > 0 && part[j] > 0 {
			if v := f[j] * whole[j] / part[j]; v > 0 && !math.IsInf(float64(v), 0) {
				f[j] = v
			}
		}
	}
	o.ScaleFactors = f
	o.Transposed = false
	data, err := dtype.FromFloat32(nil, sm, dt)
	if err != nil {
		return nil, 0, nil, view, err
	}
	gr, err := chunk.GroupRows(lay, o.GroupBytes)
	if err != nil {
		return nil, 0, nil, view, err
	}
	for _, r := range gr {
		ends = append(ends, uint64(r)*uint64(cols))
	}
	if lay.Transposed {
		ends = []uint64{uint64(lay.Len())}
	}
	sub = &codec.Tensor{Name: name, DType: dt, Shape: []uint64{uint64(srows), uint64(cols)}, Data: data}
	return sub, float64(rows) / float64(srows), ends, lay.View, nil
}

// readsRows reports whether the rate model samples it by reading rows
// (subRows) rather than the whole tensor (subTensor): a lossy matrix of
// the source, stored as it is coded, large enough to be sampled, and
// coded without guidance, whose options may depend on all of its data.
func (c *conversion) readsRows(it *item) bool {
	return codec.Lossy(it.codec) && len(it.shape) >= 2 && it.data == nil && c.o.Guidance == nil &&
		!c.transposed(it) && it.numel >= 2*minSampleWeights && it.info.DType.IsFloat() &&
		sampleBlocks(int(it.shape[0]), int(it.numel/it.shape[0])) != nil
}

// subRows is subTensor for a matrix that readsRows, reading only what it
// needs from the source: the first time, the whole tensor a block of rows
// at a time for its columns' RMS (kept in it.colScales), and after that
// the sampled rows alone.
func (c *conversion) subRows(it *item, o *codec.EncodeOptions) (sub *codec.Tensor, scale float64, ends []uint64, view [2]uint64, err error) {
	lay, err := chunk.NewLayout(it.info.DType, it.shape, false)
	if err != nil {
		return nil, 0, nil, view, err
	}
	rows, cols := lay.Rows, lay.Cols
	size := it.info.DType.Size()
	rowBytes := int64(cols * size)
	r, err := c.src.Open(it.info.Name)
	if err != nil {
		return nil, 0, nil, view, err
	}
	if r.Size() != int64(lay.Len())*int64(size) {
		return nil, 0, nil, view, fmt.Errorf("%w: tensor %q has %d bytes, want %d", chunk.ErrLayout, it.info.Name, r.Size(), lay.Len()*size)
	}
	pick := sampleBlocks(rows, cols)
	var (
		sm  []float32
		buf []byte
	)
	// load converts rows [r0, r1) to float32, appending them to dst.
	load := func(dst []float32, r0, r1 int) ([]float32, error) {
		n := int64(r1-r0) * rowBytes
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		b := buf[:n]
		if _, err := r.ReadAt(b, int64(r0)*rowBytes); err != nil {
			return nil, fmt.Errorf("reading tensor %q: %w", it.info.Name, err)
		}
		return dtype.ToFloat32(dst, b, it.info.DType)
	}
	if it.colScales == nil {
		// Blocks of whole chunk rows of about 4 MiB, so that every
		// sampled block lies in one.
		per := max(1, (4<<20)/int(rowBytes)/chunk.Rows) * chunk.Rows
		sums := make([]float64, cols)
		var m []float32
		next := 0
		for r0 := 0; r0 < rows; r0 += per {
			r1 := min(r0+per, rows)
			if m, err = load(m[:0], r0, r1); err != nil {
				return nil, 0, nil, view, err
			}
			if i := chunk.AddSquaresFinite(sums, m, cols); i >= 0 {
				return nil, 0, nil, view, fmt.Errorf("%w: tensor %q element %d is %v", chunk.ErrNonFinite, it.info.Name, r0*cols+i, m[i])
			}
			for ; next < len(pick) && pick[next] < r1; next++ {
				a, b := pick[next]-r0, min(pick[next]+chunk.Rows, rows)-r0
				sm = append(sm, m[a*cols:b*cols]...)
			}
		}
		it.colScales = chunk.ScaleValues(chunk.ScalesOfSums(sums, rows))
	} else {
		for _, r0 := range pick {
			if sm, err = load(sm, r0, min(r0+chunk.Rows, rows)); err != nil {
				return nil, 0, nil, view, err
			}
		}
	}
	return sampleOf(it.info.Name, lay, sm, it.colScales, it.info.DType, o)
}

// sampleBlocks returns the first rows of the chunk-row blocks a sample of
// a rows×cols matrix takes: about 1/sampleDivisor of them, at least
// minSampleWeights weights, one from each of as many equal strata; nil
// when that would be half the matrix or more. The block within each
// stratum is drawn from a fixed sequence, not taken at a fixed offset:
// matrices repeat with period a head (64 or 128 rows), and a regular
// stride would see the same rows of every head, which under RoPE differ
// from the others.
func sampleBlocks(rows, cols int) []int {
	nb := chunk.Chunks(rows)
	per := chunk.Rows * max(cols, 1)
	m := max((nb+sampleDivisor-1)/sampleDivisor, (minSampleWeights+per-1)/per, 1)
	if 2*m > nb {
		return nil
	}
	out := make([]int, m)
	state := uint64(0x9e3779b97f4a7c15)
	for i := range out {
		lo, hi := i*nb/m, (i+1)*nb/m
		state = splitmix(state)
		out[i] = (lo + int(state%uint64(hi-lo))) * chunk.Rows
	}
	return out
}

// splitmix is one step of SplitMix64, a fixed pseudo-random sequence.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}
