// Package train trains the models of nwc, the learned codec of package
// neural, in float64 with the uniform-noise proxy and a factorized
// logistic prior, and freezes them into codecs ([NewCodec]) that `nwc
// train` writes as .nwcc files. Neither decoding nor encoding needs it.
package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/codec/neural"
)

// Options configure [Train]. Zero fields take the documented
// defaults.
type Options struct {
	Config neural.Config // zero: neural.DefaultConfig
	Lambda float64       // weight of distortion against rate, 1 = equal slope (see distScale); zero: 1
	Steps  int           // optimizer steps; zero: 2000
	Batch  int           // chunks per step; zero: 256
	LR     float64       // Adam learning rate; zero: 1e-3
	Seed   uint64        // everything random derives from it

	// MinStep and MaxStep bound the level-0 step Δ, drawn log-uniformly:
	// 0.01…2 spans about 8 down to 1.5 bits per weight on unit-variance data.
	MinStep, MaxStep float64
	// Synthetic is the fraction of each batch drawn from unit-variance
	// Gaussian and Laplace chunks rather than the data; zero: 0.25, and 1
	// when there is no data. Negative means none.
	Synthetic float64

	// EvalEvery is the number of steps between held-out evaluations;
	// zero: Steps/20.
	EvalEvery int
	// Progress, if set, receives each held-out evaluation. An error stops
	// training and is returned by Train.
	Progress func(m *Model, st Stats) error
}

func (o *Options) withDefaults() Options {
	d := *o
	if d.Config == (neural.Config{}) {
		d.Config = neural.DefaultConfig
	}
	if d.Lambda == 0 {
		d.Lambda = 1
	}
	if d.Steps == 0 {
		d.Steps = 2000
	}
	if d.Batch == 0 {
		d.Batch = 256
	}
	if d.LR == 0 {
		d.LR = 1e-3
	}
	if d.MinStep == 0 {
		d.MinStep = 0.01
	}
	if d.MaxStep == 0 {
		d.MaxStep = 2
	}
	if d.Synthetic == 0 {
		d.Synthetic = 0.25
	}
	if d.EvalEvery == 0 {
		d.EvalEvery = max(d.Steps/20, 1)
	}
	return d
}

// Stats is one held-out evaluation. Rates are modelled bits per
// weight under the training prior, distortions mean squared errors in
// units of the squared step; Plain* are the same figures for the scalar
// quantizer the codec falls back to (round(x/Δ_q)·Δ_q).
type Stats struct {
	Step                            int
	Elapsed                         time.Duration
	TrainLoss                       float64 // mean training loss since the previous evaluation
	Loss, Rate, Dist                float64
	PlainLoss, PlainRate, PlainDist float64
}

// ErrTrain reports unusable training options or data.
var ErrTrain = errors.New("train: cannot train")

// shards is the fixed number of pieces a batch's gradient is summed in.
// It does not depend on the number of CPUs, so training gives the same
// model everywhere.
const shards = 4

// Train fits a model on the chunks of data (each data.Chunk long, columns
// normalized to unit RMS), evaluating on held (which may be empty: then
// synthetic chunks are held out). The result depends only on the inputs
// and opts.Seed.
//
// Train checks ctx before every optimizer step: once ctx is done it stops
// and returns an error wrapping context.Cause(ctx) (opts.Progress has seen
// every evaluation up to then, so a caller that saves checkpoints there
// keeps the latest).
func Train(ctx context.Context, data, held *Dataset, opts *Options) (*Model, error) {
	o := opts.withDefaults()
	c := o.Config
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if o.Steps < 0 || o.Batch < 1 || !(o.MinStep > 0 && o.MaxStep >= o.MinStep) || o.Lambda < 0 {
		return nil, fmt.Errorf("%w: bad options", ErrTrain)
	}
	for _, d := range []*Dataset{data, held} {
		if d != nil && d.Len() > 0 && d.Chunk != c.Chunk {
			return nil, fmt.Errorf("%w: dataset chunk %d, model chunk %d", ErrTrain, d.Chunk, c.Chunk)
		}
	}
	synth := o.Synthetic
	if data == nil || data.Len() == 0 {
		synth = 1
	}
	m, err := NewModel(c, o.Seed)
	if err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(o.Seed, 0x747261696e))
	evalSet := heldOutSamples(held, c, o.Seed)

	grads := make([]*Model, shards)
	works := make([]*work, shards)
	losses := make([]float64, shards)
	for i := range grads {
		grads[i], works[i] = m.zeroLike(), m.newWork()
	}
	opt := newAdam(m.params())
	batch := make([]sample, o.Batch)
	for i := range batch {
		batch[i] = sample{x: make([]float64, c.Chunk), noise: make([]float64, c.Latent)}
	}
	lnMin, lnMax := math.Log(o.MinStep), math.Log(o.MaxStep)
	start := time.Now()
	var trainSum float64
	var trainN int
	for step := 1; step <= o.Steps; step++ {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("train: stopped before step %d of %d: %w", step, o.Steps, context.Cause(ctx))
		}
		for i := range batch {
			s := &batch[i]
			s.q = r.IntN(neural.NumLevels)
			s.lnStep = lnMin + (lnMax-lnMin)*r.Float64() + math.Log(float64(neural.StepMultiplier(s.q)))
			if r.Float64() < synth {
				syntheticChunk(s.x, r)
			} else {
				data.load(s.x, r.IntN(data.Len()))
			}
			for j := range s.noise {
				s.noise[j] = r.Float64() - 0.5
			}
		}
		var wg sync.WaitGroup
		for sh := range shards {
			wg.Go(func() {
				g, w := grads[sh], works[sh]
				for _, p := range g.params() {
					clear(p)
				}
				lo, hi := sh*len(batch)/shards, (sh+1)*len(batch)/shards
				var sum float64
				for i := lo; i < hi; i++ {
					l, _, _ := m.loss(&batch[i], o.Lambda, w, g)
					sum += l
				}
				losses[sh] = sum
			})
		}
		wg.Wait()
		gsum := grads[0].params()
		for sh := 1; sh < shards; sh++ {
			for i, p := range grads[sh].params() {
				for j, v := range p {
					gsum[i][j] += v
				}
			}
		}
		for sh := range shards {
			trainSum += losses[sh]
		}
		trainN += len(batch)
		opt.step(m.params(), gsum, 1/float64(len(batch)), lrAt(o.LR, step, o.Steps))
		if err := m.checkFinite(); err != nil {
			return nil, err
		}
		if step%o.EvalEvery == 0 || step == o.Steps {
			st := m.evaluate(evalSet, o.Lambda)
			st.Step, st.Elapsed, st.TrainLoss = step, time.Since(start), trainSum/float64(trainN)
			trainSum, trainN = 0, 0
			if o.Progress != nil {
				if err := o.Progress(m, st); err != nil {
					return nil, err
				}
			}
		}
	}
	return m, nil
}

// lrAt warms the rate up over the first 5 % of steps, which keeps Adam's
// first large updates from wrecking the zero-initialized residual codec,
// and decays it by a cosine to a tenth over the rest.
func lrAt(lr float64, step, steps int) float64 {
	warm := max(steps/20, 1)
	if step < warm {
		return lr * float64(step) / float64(warm)
	}
	t := float64(step-warm) / float64(max(steps-warm, 1))
	return lr * (0.1 + 0.9*0.5*(1+math.Cos(math.Pi*t)))
}

// syntheticChunk fills x with unit-variance Gaussian or Laplace weights:
// the shapes normalized weight columns fall between.
func syntheticChunk(x []float64, r *rand.Rand) {
	if r.IntN(2) == 0 {
		for i := range x {
			x[i] = r.NormFloat64()
		}
		return
	}
	for i := range x {
		x[i] = r.ExpFloat64() / math.Sqrt2
		if r.IntN(2) == 0 {
			x[i] = -x[i]
		}
	}
}

// evalSteps are the level-0 steps of the held-out evaluation, about 2, 3,
// 4, 6 and 8 bits per weight on Gaussian data.
var evalSteps = []float64{0.9, 0.45, 0.22, 0.055, 0.014}

// heldOutSamples builds the fixed evaluation set: up to 512 held-out
// chunks (synthetic ones if there are none), each at every level and step
// of evalSteps.
func heldOutSamples(held *Dataset, c neural.Config, seed uint64) []sample {
	const n = 512
	r := rand.New(rand.NewPCG(seed, 0x68656c64))
	var xs [][]float64
	if held != nil && held.Len() > 0 {
		for i := range min(n, held.Len()) {
			x := make([]float64, c.Chunk)
			held.load(x, i*held.Len()/min(n, held.Len()))
			xs = append(xs, x)
		}
	} else {
		for range n {
			x := make([]float64, c.Chunk)
			syntheticChunk(x, r)
			xs = append(xs, x)
		}
	}
	var out []sample
	for i, x := range xs {
		q := i % neural.NumLevels
		for _, st := range evalSteps {
			out = append(out, sample{x: x, q: q, lnStep: math.Log(st * float64(neural.StepMultiplier(q)))})
		}
	}
	return out
}

// evaluate returns the mean held-out figures of m and of the scalar
// quantizer under m's prior.
func (m *Model) evaluate(set []sample, lambda float64) Stats {
	var st Stats
	w := m.newWork()
	plain := m.plain()
	for i := range set {
		l, r, d := m.loss(&set[i], lambda, w, nil)
		st.Loss, st.Rate, st.Dist = st.Loss+l, st.Rate+r, st.Dist+d
		l, r, d = plain.loss(&set[i], lambda, w, nil)
		st.PlainLoss, st.PlainRate, st.PlainDist = st.PlainLoss+l, st.PlainRate+r, st.PlainDist+d
	}
	n := float64(max(len(set), 1))
	st.Loss, st.Rate, st.Dist = st.Loss/n, st.Rate/n, st.Dist/n
	st.PlainLoss, st.PlainRate, st.PlainDist = st.PlainLoss/n, st.PlainRate/n, st.PlainDist/n
	return st
}

// plain returns a copy of m whose nets output zero: the scalar quantizer
// with m's prior. Only meaningful for residual configurations.
func (m *Model) plain() *Model {
	p := m.zeroLike()
	for q := range neural.NumLevels {
		copy(p.PriorA[q], m.PriorA[q])
		copy(p.PriorB[q], m.PriorB[q])
	}
	return p
}

// adam is the Adam optimizer (β1 0.9, β2 0.999) with the gradient clipped
// to global norm 1 first.
type adam struct {
	m, v [][]float64
	t    int
}

func newAdam(params [][]float64) *adam {
	a := &adam{}
	for _, p := range params {
		a.m = append(a.m, make([]float64, len(p)))
		a.v = append(a.v, make([]float64, len(p)))
	}
	return a
}

// step applies one update with gradient grads·scale.
func (a *adam) step(params, grads [][]float64, scale, lr float64) {
	const b1, b2, eps = 0.9, 0.999, 1e-8
	var norm float64
	for _, g := range grads {
		for _, v := range g {
			norm += (v * scale) * (v * scale)
		}
	}
	norm = math.Sqrt(norm)
	if norm > 1 {
		scale /= norm
	}
	a.t++
	c1 := 1 - math.Pow(b1, float64(a.t))
	c2 := 1 - math.Pow(b2, float64(a.t))
	for i, p := range params {
		m, v, g := a.m[i], a.v[i], grads[i]
		for j := range p {
			gj := g[j] * scale
			m[j] = b1*m[j] + (1-b1)*gj
			v[j] = b2*v[j] + (1-b2)*gj*gj
			p[j] -= lr * (m[j] / c1) / (math.Sqrt(v[j]/c2) + eps)
		}
	}
}

// A Dataset holds training chunks: Chunk consecutive rows of one column of
// a weight matrix whose columns were normalized to unit RMS, the domain the
// codec works in.
type Dataset struct {
	Chunk int
	data  []float32 // Len()×Chunk values
}

// NewDataset returns an empty dataset of chunks of the given size.
func NewDataset(chunk int) *Dataset { return &Dataset{Chunk: chunk} }

// Len returns the number of chunks.
func (d *Dataset) Len() int {
	if d == nil || d.Chunk == 0 {
		return 0
	}
	return len(d.data) / d.Chunk
}

// AddMatrix normalizes each column of the rows×cols row-major matrix w
// (in place) exactly as the codec does and adds its chunks; a ragged last
// chunk is zero-padded as in coding. All-zero columns are left out, as
// they teach nothing.
func (d *Dataset) AddMatrix(w []float32, rows, cols int) {
	if d.Chunk != chunk.Rows || rows < 1 || cols < 1 || len(w) < rows*cols {
		return
	}
	scales := chunk.ScaleValues(chunk.Scales(w, rows, cols))
	chunk.Normalize(w, cols, scales)
	var c [chunk.Rows]float32
	for j := range cols {
		if scales[j] == 0 {
			continue
		}
		for b := range chunk.Chunks(rows) {
			chunk.Gather(&c, w, rows, cols, b, j)
			d.data = append(d.data, c[:]...)
		}
	}
}

// AddTensor adds the chunks of a floating-point tensor of rank ≥ 2 viewed
// as the codec views it; other tensors are skipped and reported false.
func (d *Dataset) AddTensor(t *codec.Tensor, transposed bool) (bool, error) {
	if len(t.Shape) < 2 || !t.DType.IsFloat() {
		return false, nil
	}
	l, m, err := chunk.Load(t, transposed)
	if err != nil {
		return false, err
	}
	d.AddMatrix(m, l.Rows, l.Cols)
	return true, nil
}

// Split deals the chunks into a training set and a held-out set that gets
// every heldEvery-th chunk; interleaving keeps every tensor represented
// in both.
func (d *Dataset) Split(heldEvery int) (train, held *Dataset) {
	train, held = NewDataset(d.Chunk), NewDataset(d.Chunk)
	for i := range d.Len() {
		c := d.data[i*d.Chunk : (i+1)*d.Chunk]
		if heldEvery > 0 && i%heldEvery == heldEvery-1 {
			held.data = append(held.data, c...)
		} else {
			train.data = append(train.data, c...)
		}
	}
	return train, held
}

// load copies chunk i into x.
func (d *Dataset) load(x []float64, i int) {
	for k, v := range d.data[i*d.Chunk : (i+1)*d.Chunk] {
		x[k] = float64(v)
	}
}
