package train

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/nwcodec/nwc/codec/neural"
)

// A Model is a trainable codec: an encoder net that maps a chunk (divided
// by its step) to latents, a decoder net that maps latents back, and the
// factorized prior that stands in for the entropy coder while training.
// Only the decoder is needed to decode; it is what a file's codec blob
// holds.
type Model struct {
	Config neural.Config
	Enc    Net // [v, ln Δ_q] → latents (corrections to v when residual)
	Dec    Net // [y, ln Δ_q] → chunk/Δ_q (corrections to y when residual)
	// PriorA and PriorB give the prior's log scale per level and latent
	// channel: ln s = PriorA[q][c] + PriorB[q][c]·ln Δ_q − ln Δ_q.
	PriorA, PriorB [neural.NumLevels][]float64
}

// NewModel returns an untrained model drawn from seed. With Latent ==
// Chunk both nets start with a zero last layer, so the untrained codec is
// exactly the uniform scalar quantizer.
func NewModel(c neural.Config, seed uint64) (*Model, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	r := rand.New(rand.NewPCG(seed, 0x6e7763))
	m := &Model{
		Config: c,
		Enc:    newNet(c.Chunk+1, c.Latent, c.Width, c.Blocks, residual(c), r),
		Dec:    newNet(c.Latent+1, c.Chunk, c.Width, c.Blocks, residual(c), r),
	}
	for q := range neural.NumLevels {
		m.PriorA[q] = make([]float64, c.Latent)
		m.PriorB[q] = make([]float64, c.Latent)
		for i := range m.PriorA[q] {
			m.PriorA[q][i] = math.Log(logisticStd)
		}
	}
	return m, nil
}

// params lists every trainable slice in a fixed order.
func (m *Model) params() [][]float64 {
	p := append(m.Enc.params(), m.Dec.params()...)
	for q := range neural.NumLevels {
		p = append(p, m.PriorA[q], m.PriorB[q])
	}
	return p
}

// zeroLike returns a model of the same shape with all parameters zero.
func (m *Model) zeroLike() *Model {
	z := &Model{Config: m.Config, Enc: m.Enc.zeroLike(), Dec: m.Dec.zeroLike()}
	for q := range neural.NumLevels {
		z.PriorA[q] = make([]float64, len(m.PriorA[q]))
		z.PriorB[q] = make([]float64, len(m.PriorB[q]))
	}
	return z
}

// A sample is one chunk to code at level q with step exp(lnStep). noise
// holds the uniform noise of the training proxy, one per latent, or is nil
// to round as the real codec does.
type sample struct {
	x      []float64
	q      int
	lnStep float64
	noise  []float64
}

// work is one goroutine's scratch space.
type work struct {
	te, td  *tape
	v       []float64 // the chunk in units of the step
	y, yn   []float64 // latents as decoded, and as the rate sees them
	r, dy   []float64
	dd, din []float64
	// noisyDecoder feeds the decoder the noisy latents, making the loss
	// differentiable everywhere so that tests can check the backward pass
	// against finite differences (the straight-through path shares it).
	noisyDecoder bool
}

func (m *Model) newWork() *work {
	c := m.Config
	return &work{
		te: m.Enc.newTape(), td: m.Dec.newTape(),
		v: make([]float64, c.Chunk), y: make([]float64, c.Latent), yn: make([]float64, c.Latent), r: make([]float64, c.Chunk), dy: make([]float64, c.Latent),
		dd: make([]float64, c.Chunk), din: make([]float64, c.Latent+1),
	}
}

// distScale turns λ into the weight of the mean squared error in step²
// units: for a uniform quantizer at high rate, dD/dR = −2 ln 2·Δ²/12, so
// λ = 1 puts the loss at the equal-slope point of every step.
func distScale(lambda float64) float64 { return lambda * 6 / math.Ln2 }

// loss runs the model on s and returns the loss, the rate in modelled bits
// per weight and the mean squared error per weight in units of the
// squared step. If g is not nil it accumulates the loss's gradient there.
func (m *Model) loss(s *sample, lambda float64, w *work, g *Model) (loss, rate, dist float64) {
	c := m.Config
	step := math.Exp(s.lnStep)
	in := w.te.acts[0]
	for k, xv := range s.x {
		in[k] = xv
		w.v[k] = xv / step
	}
	feat := float64(neural.StepFeature(float32(step)))
	in[c.Chunk] = feat
	e := m.Enc.forward(w.te, s.q)
	// The decoder sees rounded latents even while training, with the
	// gradient passed straight through the rounding; only the rate sees
	// the uniform noise. Training the decoder on noisy latents would teach
	// it to undo noise it never meets in a file.
	for i := range w.y {
		y := e[i]
		if residual(c) {
			y += w.v[i]
		}
		w.yn[i] = y
		if s.noise != nil {
			w.yn[i] += s.noise[i]
		} else {
			w.yn[i] = math.RoundToEven(y)
		}
		w.y[i] = math.RoundToEven(y)
		if w.noisyDecoder {
			w.y[i] = w.yn[i]
		}
	}
	din := w.td.acts[0]
	for i, y := range w.y {
		din[i] = y * step
	}
	din[c.Latent] = feat
	d := m.Dec.forward(w.td, s.q)
	for k := range w.r {
		xh := d[k]
		if residual(c) {
			xh += w.y[k]
		}
		w.r[k] = w.v[k] - xh
		dist += w.r[k] * w.r[k]
	}
	dist /= float64(c.Chunk)
	alpha := distScale(lambda)
	inv := 1 / float64(c.Chunk)
	for i, y := range w.yn {
		lnS := m.PriorA[s.q][i] + (m.PriorB[s.q][i]-1)*s.lnStep
		bits, dy, dlnS := latentBits(y, lnS)
		rate += bits
		w.dy[i] = dy * inv
		if g != nil {
			g.PriorA[s.q][i] += dlnS * inv
			g.PriorB[s.q][i] += dlnS * inv * s.lnStep
		}
	}
	rate *= inv
	loss = alpha*dist + rate
	if g == nil {
		return loss, rate, dist
	}
	for k, r := range w.r {
		w.dd[k] = -2 * alpha * r * inv
	}
	m.Dec.backward(w.td, s.q, w.dd, w.din, &g.Dec)
	for i := range w.dy {
		w.dy[i] += w.din[i] * step
		if residual(c) {
			w.dy[i] += -2 * alpha * w.r[i] * inv
		}
	}
	m.Enc.backward(w.te, s.q, w.dy, nil, &g.Enc)
	return loss, rate, dist
}

// checkFinite reports the first parameter that is NaN or infinite, which
// means training diverged.
func (m *Model) checkFinite() error {
	for i, p := range m.params() {
		for j, v := range p {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fmt.Errorf("neural: parameter %d[%d] is %v: training diverged", i, j, v)
			}
		}
	}
	return nil
}

// The training prior is a factorized logistic density per latent channel
// and level, convolved with the unit uniform noise that stands in for
// rounding. Its log scale is affine in ln Δ_q,
//
//	ln s = a[q][c] + b[q][c]·ln Δ_q − ln Δ_q,
//
// so that one prior covers every step: for unit-variance weights the
// latents of the scalar quantizer have scale ∝ 1/Δ_q (b = 0). The prior
// only guides training; files code latents with integer tables built from
// each tensor's own latents.

// logisticStd is the scale of a logistic distribution of unit variance.
var logisticStd = math.Sqrt(3) / math.Pi

// minProb bounds the modelled probability of a latent from below, so that
// the rate of an outlier is large but finite.
const minProb = 1e-12

func sigmoid(z float64) float64 {
	if z >= 0 {
		return 1 / (1 + math.Exp(-z))
	}
	e := math.Exp(z)
	return e / (1 + e)
}

// latentBits returns −log2 P(y) for P the logistic density of log scale
// lnS integrated over [y−½, y+½], with its derivatives with respect to y
// and lnS.
func latentBits(y, lnS float64) (bits, dy, dlnS float64) {
	s := math.Exp(lnS)
	a := math.Abs(y) // the density is symmetric; the upper tail is stable
	zp, zm := (a+0.5)/s, (a-0.5)/s
	sp, sm := sigmoid(-zp), sigmoid(-zm)
	p := sm - sp
	if p < minProb {
		return -math.Log2(minProb), 0, 0
	}
	fp, fm := sp*(1-sp), sm*(1-sm)
	dpda := (fp - fm) / s
	dpdlnS := fm*zm - fp*zp
	k := -1 / (p * math.Ln2)
	dy = k * dpda
	if y < 0 {
		dy = -dy
	}
	return -math.Log2(p), dy, k * dpdlnS
}
