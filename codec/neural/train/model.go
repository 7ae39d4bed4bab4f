package train

import (
	"math"
	"math/rand/v2"

	"github.com/nwcodec/nwc/codec/mlp"
	"github.com/nwcodec/nwc/codec/neural"
)

// residual reports whether the networks predict corrections to the scalar
// quantizer (y = v + E(v), x̂/Δ = y + D(y)) rather than the latents and the
// reconstruction themselves; it needs one latent per weight.
func residual(c neural.Config) bool { return c.Latent == c.Chunk }

// A Layer is an affine map with optional ReLU, residual connection and
// level embedding: out = (x·[Residual] + act(W·x + B)) ⊙ Embed[q]·[Embed].
type Layer struct {
	In, Out  int
	W        []float64 // Out×In, row-major
	B        []float64 // Out
	ReLU     bool
	Residual bool // needs In == Out
	Embed    bool // multiply by the net's level embedding afterwards
}

// A Net is a stack of layers with one embedding vector per importance
// level, as wide as the layers that use it.
type Net struct {
	Layers []Layer
	Embed  [neural.NumLevels][]float64
}

// newNet builds in → Linear(width) → blocks × residual → Linear(out). The
// last layer starts at zero when zeroOut is set, so that a residual codec
// begins as the plain scalar quantizer.
func newNet(in, out, width, blocks int, zeroOut bool, r *rand.Rand) Net {
	var n Net
	n.Layers = append(n.Layers, newLayer(in, width, r))
	for range blocks {
		l := newLayer(width, width, r)
		l.ReLU, l.Residual, l.Embed = true, true, true
		n.Layers = append(n.Layers, l)
	}
	last := newLayer(width, out, r)
	if zeroOut {
		clear(last.W)
	}
	n.Layers = append(n.Layers, last)
	for q := range n.Embed {
		n.Embed[q] = make([]float64, width)
		for i := range n.Embed[q] {
			n.Embed[q][i] = 1
		}
	}
	return n
}

// newLayer draws He-uniform weights, which keep activations of ReLU stacks
// at a stable scale, and zero biases.
func newLayer(in, out int, r *rand.Rand) Layer {
	l := Layer{In: in, Out: out, W: make([]float64, in*out), B: make([]float64, out)}
	lim := math.Sqrt(6 / float64(in))
	for i := range l.W {
		l.W[i] = (2*r.Float64() - 1) * lim
	}
	return l
}

// params lists the trainable slices of the net in a fixed order, which the
// optimizer and the gradient check rely on.
func (n *Net) params() [][]float64 {
	var p [][]float64
	for i := range n.Layers {
		p = append(p, n.Layers[i].W, n.Layers[i].B)
	}
	if n.usesEmbed() {
		for q := range n.Embed {
			p = append(p, n.Embed[q])
		}
	}
	return p
}

func (n *Net) usesEmbed() bool {
	for _, l := range n.Layers {
		if l.Embed {
			return true
		}
	}
	return false
}

// zeroLike returns a net of the same shape with every parameter zero: the
// gradient accumulator.
func (n *Net) zeroLike() Net {
	z := Net{Layers: make([]Layer, len(n.Layers))}
	for i, l := range n.Layers {
		l.W = make([]float64, len(l.W))
		l.B = make([]float64, len(l.B))
		z.Layers[i] = l
	}
	for q := range n.Embed {
		z.Embed[q] = make([]float64, len(n.Embed[q]))
	}
	return z
}

// A tape holds one sample's activations for the backward pass: acts[i] is
// the input of layer i and acts[len] the output; pre[i] is W·x+B of layer i.
type tape struct {
	acts [][]float64
	pre  [][]float64
	grad [][]float64 // grad[i]: gradient with respect to acts[i], i ≥ 1
}

func (n *Net) newTape() *tape {
	t := &tape{
		acts: make([][]float64, len(n.Layers)+1),
		pre:  make([][]float64, len(n.Layers)),
		grad: make([][]float64, len(n.Layers)),
	}
	t.acts[0] = make([]float64, n.Layers[0].In)
	for i, l := range n.Layers {
		t.pre[i] = make([]float64, l.Out)
		t.acts[i+1] = make([]float64, l.Out)
		t.grad[i] = make([]float64, l.In)
	}
	return t
}

// forward runs the net on t.acts[0] for level q and returns the output
// (aliasing the tape).
func (n *Net) forward(t *tape, q int) []float64 {
	for i := range n.Layers {
		l := &n.Layers[i]
		x, pre, out := t.acts[i], t.pre[i], t.acts[i+1]
		for o := range l.Out {
			s := l.B[o]
			w := l.W[o*l.In : (o+1)*l.In]
			for k, xv := range x {
				s += w[k] * xv
			}
			pre[o] = s
			a := s
			if l.ReLU && a < 0 {
				a = 0
			}
			if l.Residual {
				a += x[o]
			}
			if l.Embed {
				a *= n.Embed[q][o]
			}
			out[o] = a
		}
	}
	return t.acts[len(n.Layers)]
}

// backward accumulates into g the gradient of the loss given dout, its
// gradient with respect to the net's output, and returns the gradient with
// respect to the input in din (which may be nil when not needed). dout is
// overwritten.
func (n *Net) backward(t *tape, q int, dout, din []float64, g *Net) {
	d := dout
	for i := len(n.Layers) - 1; i >= 0; i-- {
		l := &n.Layers[i]
		gl := &g.Layers[i]
		x, pre := t.acts[i], t.pre[i]
		var dx []float64
		if i > 0 {
			dx = t.grad[i]
		} else if din != nil {
			dx = din
		}
		if dx != nil {
			clear(dx)
		}
		for o := range l.Out {
			do := d[o]
			if l.Embed {
				// out = u ⊙ e, with u = out/e recomputed from pre to
				// stay exact when e is zero.
				u := pre[o]
				if l.ReLU && u < 0 {
					u = 0
				}
				if l.Residual {
					u += x[o]
				}
				g.Embed[q][o] += do * u
				do *= n.Embed[q][o]
			}
			if l.Residual && dx != nil {
				dx[o] += do
			}
			if l.ReLU && pre[o] < 0 {
				continue
			}
			gl.B[o] += do
			w := l.W[o*l.In : (o+1)*l.In]
			gw := gl.W[o*l.In : (o+1)*l.In]
			for k, xv := range x {
				gw[k] += do * xv
			}
			if dx != nil {
				for k, wv := range w {
					dx[k] += do * wv
				}
			}
		}
		d = dx
		if d == nil {
			return
		}
	}
}

// NewCodec freezes a trained model into a codec whose networks are its
// nets with every parameter rounded to the nearest float32; info records
// its provenance (the training command).
func NewCodec(m *Model, info string) (*neural.Codec, error) {
	var priorA, priorB [neural.NumLevels][]float32
	for q := range neural.NumLevels {
		priorA[q] = toF32(m.PriorA[q])
		priorB[q] = toF32(m.PriorB[q])
	}
	return neural.NewCodec(m.Config, m.Enc.mlpNet(), m.Dec.mlpNet(), priorA, priorB, info)
}

// mlpNet converts a trained net to the float32 network the fast kernels
// and the format use; each parameter is rounded to nearest.
func (n *Net) mlpNet() *mlp.Net {
	out := &mlp.Net{}
	for _, l := range n.Layers {
		out.Layers = append(out.Layers, mlp.Layer{
			In: l.In, Out: l.Out, W: toF32(l.W), B: toF32(l.B), ReLU: l.ReLU, Residual: l.Residual,
		})
	}
	if n.usesEmbed() {
		for q := range n.Embed {
			out.Embed = append(out.Embed, toF32(n.Embed[q]))
		}
	}
	return out
}

func toF32(v []float64) []float32 {
	f := make([]float32, len(v))
	for i, x := range v {
		f[i] = float32(x)
	}
	return f
}
