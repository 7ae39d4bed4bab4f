package convert

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/nwcodec/nwc/calib"
	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/internal/chol"
	"github.com/nwcodec/nwc/internal/gemm"
	"github.com/nwcodec/nwc/llama"
)

// sequential codes the matrices of the calibration model in the order a
// forward pass reaches them and re-derives the guidance of each from the
// model as compressed so far. For a linear layer whose compressed input is
// x̃ where the original's was x, the output error to minimize is
// E‖W x − Ŵ x̃‖², not E‖(W − Ŵ) x‖²: up to a constant it equals
// E‖(W* − Ŵ) x̃‖² with H̃ = E[x̃ x̃ᵀ] and the target
// W* = W E[x x̃ᵀ] H̃⁻¹, the layer that best maps what it will see to what
// the original produced. So every matrix gets H̃ as its Hessian and W* as
// the data to code, and the errors of earlier layers are partly undone by
// later ones instead of piling up. The matrices are coded at their current
// steps; the caller runs rate control again afterwards.
//
// The work streams through the layers: it holds one layer of the original
// model (read from the checkpoint when the calibration model is lazy) and
// of the compressed one, and both models' residual streams over the
// calibration text. Each layer runs once for the original (recording the
// inputs of its four groups of matrices sharing an input) and five times
// for the compressed model (once per group, once to move on).
func (c *conversion) sequential(ctx context.Context, cal *Calibration) error {
	bm := cal.model()
	cfg := bm.Config()
	ws := llama.Windows(cal.Docs, cal.window(), 0)
	if len(ws) == 0 {
		return fmt.Errorf("convert: %w: no calibration tokens", codec.ErrOptions)
	}
	groups := map[string][]*item{}
	var first []*item // matrices read before any linear layer: the embedding
	for _, it := range c.items {
		if !codec.Lossy(it.codec) || len(it.shape) < 2 || c.transposed(it) {
			continue
		}
		name, ok := bm.ModelName(it.info.Name)
		if !ok {
			continue // not a weight of the model
		}
		key, ok := bm.HessianKey(name)
		switch {
		case name == llama.NameEmbedding:
			first = append(first, it)
		case ok:
			groups[key] = append(groups[key], it)
		}
	}
	run, err := llama.NewBlockRunner(cfg)
	if err != nil {
		return err
	}
	emb, err := bm.Tensor(llama.NameEmbedding)
	if err != nil {
		return err
	}
	// The embedding comes first: with tied embeddings it is also the
	// classifier, but every layer reads it, so its own guidance stays.
	embQ := emb
	for _, it := range first {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Token steps code it without a Hessian.
		if cfg.TiedEmbeddings && !hasOwnHessian(it) && !c.vocabMatrix(it, false) && c.o.Guidance.hessianFor(it.info.Name, it.numel/it.shape[0], false) == nil {
			if it.hessian, err = classifierHessian(ctx, bm, run, ws, emb); err != nil {
				return err
			}
		}
		coded, err := c.codeOnce(it)
		if err != nil {
			return err
		}
		embQ = bm.ModelLayout(llama.NameEmbedding, coded)
	}
	xr, err := embed(ws, emb, cfg)
	if err != nil {
		return err
	}
	xm, _ := embed(ws, embQ, cfg)
	emb, embQ = nil, nil
	var done, total int
	var weights, totalWeights uint64
	for _, its := range groups {
		total += len(its)
		for _, it := range its {
			totalWeights += it.numel
		}
	}
	report := func(its []*item) {
		for _, it := range its {
			done++
			weights += it.numel
			if c.o.Progress != nil {
				c.o.Progress(Progress{Phase: PhaseSequential, Pass: 1, Tensors: done, TotalTensors: total,
					Weights: weights, TotalWeights: totalWeights, Tensor: it.info.Name})
			}
		}
	}
	var y []float32
	for l := range cfg.NLayers {
		if err := ctx.Err(); err != nil {
			return err
		}
		ref, err := bm.Block(l)
		if err != nil {
			return err
		}
		cmp := ref
		keys := []string{llama.LayerName(l, "attention.wq"), llama.LayerName(l, "attention.wo"), llama.LayerName(l, "feed_forward.w1"), llama.LayerName(l, "feed_forward.w2")}
		// The original layer runs once: it records its inputs and moves
		// its stream on.
		refIn := newCapture(keys, len(ws))
		for i := range ws {
			if err := ctx.Err(); err != nil {
				return err
			}
			refIn.win = i
			if err := run.Run(l, &ref, xr[i], refIn); err != nil {
				return err
			}
		}
		for _, key := range keys {
			its := groups[key]
			if len(its) == 0 {
				continue
			}
			got := newCapture([]string{key}, len(ws))
			mo := newMoments(refIn.cols[key])
			for i := range ws {
				if err := ctx.Err(); err != nil {
					return err
				}
				got.win = i
				y = append(y[:0], xm[i]...)
				if err := run.Run(l, &cmp, y, got); err != nil {
					return err
				}
				mo.Add(refIn.x[key][i], got.x[key][i])
				got.x[key][i] = nil
			}
			set := func(name string, coded []float32) {
				_, suffix, _ := strings.Cut(strings.TrimSuffix(name, ".weight"), "."+strconv.Itoa(l)+".")
				if f := cmp.Field(suffix); f != nil {
					*f = coded
				}
			}
			if err := c.codeGroup(bm, mo, key, its, set); err != nil {
				return err
			}
			report(its)
		}
		for i := range ws {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := run.Run(l, &cmp, xm[i], nil); err != nil {
				return err
			}
		}
	}
	if its := groups[llama.NameOutput]; len(its) > 0 {
		norm, err := bm.Tensor(llama.NameNorm)
		if err != nil {
			return err
		}
		mo := newMoments(cfg.Dim)
		for i := range ws {
			llama.RMSNormRows(xr[i], norm, cfg.NormEps)
			llama.RMSNormRows(xm[i], norm, cfg.NormEps)
			mo.Add(xr[i], xm[i])
		}
		if err := c.codeGroup(bm, mo, llama.NameOutput, its, func(string, []float32) {}); err != nil {
			return err
		}
		report(its)
	}
	return nil
}

// embed returns every window's rows of the embedding table emb.
func embed(ws [][]int, emb []float32, cfg llama.Config) ([][]float32, error) {
	dim := cfg.Dim
	xs := make([][]float32, len(ws))
	for i, w := range ws {
		xs[i] = make([]float32, len(w)*dim)
		for r, t := range w {
			if t < 0 || t >= cfg.VocabSize {
				return nil, fmt.Errorf("convert: %w: token %d, vocabulary %d", llama.ErrToken, t, cfg.VocabSize)
			}
			copy(xs[i][r*dim:(r+1)*dim], emb[t*dim:(t+1)*dim])
		}
	}
	return xs, nil
}

// finalStream runs the original model bm, whose embedding is emb, over
// the windows ws and returns each window's final residual stream.
func finalStream(ctx context.Context, bm calibModel, run *llama.BlockRunner, ws [][]int, emb []float32) ([][]float32, error) {
	xs, err := embed(ws, emb, bm.Config())
	if err != nil {
		return nil, err
	}
	for l := range bm.Config().NLayers {
		b, err := bm.Block(l)
		if err != nil {
			return nil, err
		}
		for _, x := range xs {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if err := run.Run(l, &b, x, nil); err != nil {
				return nil, err
			}
		}
	}
	return xs, nil
}

// classifierHessian runs the original model over ws and returns the
// Hessian of the classifier's input, the final normalized stream.
func classifierHessian(ctx context.Context, bm calibModel, run *llama.BlockRunner, ws [][]int, emb []float32) (*calib.Hessian, error) {
	cfg := bm.Config()
	xs, err := finalStream(ctx, bm, run, ws, emb)
	if err != nil {
		return nil, err
	}
	norm, err := bm.Tensor(llama.NameNorm)
	if err != nil {
		return nil, err
	}
	mo := newSelfMoments(cfg.Dim)
	for _, x := range xs {
		llama.RMSNormRows(x, norm, cfg.NormEps)
		mo.AddSelf(x)
	}
	return meanHessian(mo), nil
}

// capture keeps, per window, copies of the inputs recorded under some
// keys.
type capture struct {
	win  int
	x    map[string][][]float32
	cols map[string]int
}

func newCapture(keys []string, windows int) *capture {
	c := &capture{x: map[string][][]float32{}, cols: map[string]int{}}
	for _, k := range keys {
		c.x[k] = make([][]float32, windows)
	}
	return c
}

func (c *capture) Observe(name string, x []float32, cols int) {
	if w, ok := c.x[name]; ok {
		w[c.win] = append(w[c.win][:0], x...)
		c.cols[name] = cols
	}
}

// newMoments returns empty paired moments of an n-wide input.
func newMoments(n int) *llama.Moments {
	return &llama.Moments{N: n, XX: make([]float64, n*n), RX: make([]float64, n*n)}
}

// newSelfMoments returns empty moments of an n-wide input for AddSelf,
// which needs no cross moments.
func newSelfMoments(n int) *llama.Moments {
	return &llama.Moments{N: n, XX: make([]float64, n*n)}
}

// codeGroup codes the matrices its that read the input recorded under key,
// with the Hessian and targets of the moments mo, handing set each one as
// a reader would decode it, in the model's layout.
func (c *conversion) codeGroup(bm calibModel, mo *llama.Moments, key string, its []*item, set func(name string, coded []float32)) error {
	var rows int
	for _, it := range its {
		if int(it.numel/it.shape[0]) == mo.N {
			rows += int(it.shape[0])
		}
	}
	damp := SequentialDamp
	if g := c.o.Guidance; g != nil && g.SequentialDamp > 0 {
		damp = g.SequentialDamp
	}
	h, corr, err := targetMap(mo, damp, rows)
	if errors.Is(err, errZeroInput) {
		// The layer's output is zero whatever its weights: nothing to
		// correct, so the matrices keep their own guidance.
		corr = nil
	} else if err != nil {
		return fmt.Errorf("convert: sequential guidance for %s: %w", key, err)
	}
	for _, it := range its {
		name, _ := bm.ModelName(it.info.Name)
		if corr != nil && int(it.numel/it.shape[0]) == mo.N {
			data, err := c.readTensor(it)
			if err != nil {
				return err
			}
			w, err := dtype.ToFloat32(nil, data, it.info.DType)
			if err != nil {
				return err
			}
			if err := corr.apply(w, c.o.Encode.Interrupt); err != nil {
				return err
			}
			if it.data, err = dtype.FromFloat32(nil, w, it.info.DType); err != nil {
				return err
			}
			it.hessian, it.factors = h, nil
		}
		coded, err := c.codeOnce(it)
		if err != nil {
			return err
		}
		set(name, bm.ModelLayout(name, coded))
	}
	return c.spillGuidance(its, h)
}

// codeOnce codes one matrix at its current step and returns what a
// reader would decode, in the checkpoint's layout.
func (c *conversion) codeOnce(it *item) ([]float32, error) {
	data, err := c.readTensor(it)
	if err != nil {
		return nil, err
	}
	t := &codec.Tensor{Name: it.info.Name, DType: it.info.DType, Shape: it.shape, Data: data}
	o, err := c.options(it, t)
	if err != nil {
		return nil, err
	}
	return roundTrip(it.codec, t, o)
}

// SequentialDamp is the ridge on the correction sequential guidance makes
// to a matrix, relative to the mean of its input Hessian's diagonal. The
// correction is fitted on the calibration text, so it can fit that text's
// noise: on stories260K at 4 bits per weight, calibrated on one half of
// tinystories-dev.txt and judged by the KL divergence from the original
// on the other half (both ways round, nwc eval kl), 0.3 gave 0.0561
// nats/token, 0.1 0.0597, 1 0.0590 and LDLQ's own 0.01 0.069 (0.0767
// without sequential guidance), while on the calibration half 0.01 looked
// best. (0.01 was judged on the first split only.)
const SequentialDamp = 0.3

// errZeroInput reports an input that was zero on every calibration token.
var errZeroInput = errors.New("input is zero on every token")

// targetMap turns paired moments into the Hessian H̃ = E[x̃ x̃ᵀ] and the
// correction W* = W + W·G with G = (E[x x̃ᵀ] − H̃)(H̃ + δI)⁻¹, δ being
// damp times the mean of H̃'s diagonal, for matrices of rows rows in all.
// Writing the target as a correction of W means the damping only shrinks
// the correction, never W. It works in mo's sums, which it leaves nil: for
// a feed-forward layer's down projection each N×N matrix is a quarter of
// a gigabyte on the 1.1 B Llama shape, and one layer's worth is what
// memory should hold.
//
// Forming G costs 2N³ flops and applying it 2N² per row; when the rows
// are fewer than N (the down projection reads a hidden-wide input into a
// model-wide output), solving with the rows as right-hand sides costs 4N²
// per row and nothing more, so the correction keeps H̃ + δI's factor and
// D = E[x x̃ᵀ] − H̃ instead.
func targetMap(mo *llama.Moments, damp float64, rows int) (*calib.Hessian, *correction, error) {
	n := mo.N
	inv := 1 / float64(mo.Count)
	h, rx := mo.XX, mo.RX
	mo.XX, mo.RX = nil, nil
	for i, v := range h {
		h[i] = v * inv
	}
	var mean float64
	for i := range n {
		mean += h[i*n+i]
	}
	mean /= float64(n)
	if mean == 0 {
		return nil, nil, errZeroInput
	}
	if !(mean > 0) || math.IsInf(mean, 0) {
		return nil, nil, fmt.Errorf("input Hessian has diagonal mean %v", mean)
	}
	hd := make([]float64, n*n)
	for i := range n {
		copy(hd[i*n+i:(i+1)*n], h[i*n+i:(i+1)*n])
		hd[i*n+i] += damp * mean
	}
	if !chol.Upper(hd, n) {
		return nil, nil, fmt.Errorf("input Hessian is not positive definite")
	}
	for i, v := range rx {
		rx[i] = v*inv - h[i]
	}
	hs := &calib.Hessian{N: n, Data: h, Tokens: mo.Count}
	if rows < n {
		return hs, &correction{n: n, u: hd, d: rx}, nil
	}
	// G = D·Hd⁻¹, so Gᵀ = Hd⁻¹·Dᵀ.
	transposeSquare(rx, n)
	chol.Solve(hd, n, rx, n)
	transposeSquare(rx, n)
	return hs, &correction{n: n, g: rx}, nil
}

// A correction is the map W ← W + W·G of sequential guidance for the
// matrices reading one N-wide input: G itself, or the factor u of
// H̃ + δI (chol.Upper) and D with G = D·(H̃ + δI)⁻¹.
type correction struct {
	n    int
	g    []float64
	u, d []float64
}

// apply replaces w (rows×N, row-major) by w + w·G, in float64, going
// through correctionRows rows at a time: every element's sums run in the
// same order whatever the rows handled at once (gemm and chol treat rows
// and right-hand sides independently), and float64 copies of a
// classifier's 65 M weights would take a gigabyte. interrupt, if set, is
// checked before each block of rows: a large classifier's correction
// takes minutes.
func (c *correction) apply(w []float32, interrupt func() error) error {
	n := c.n
	rows := len(w) / n
	if rows == 0 {
		return nil
	}
	step := min(rows, correctionRows)
	w64 := make([]float64, step*n)
	out := make([]float64, step*n)
	for r0 := 0; r0 < rows; r0 += step {
		if interrupt != nil {
			if err := interrupt(); err != nil {
				return err
			}
		}
		m := min(r0+step, rows) - r0
		ws := w[r0*n : (r0+m)*n]
		for i, v := range ws {
			w64[i] = float64(v)
		}
		if c.g != nil {
			gemm.Dgemm(false, false, m, n, n, 1, w64[:m*n], n, c.g, n, 0, out[:m*n], n)
			for i, v := range out[:m*n] {
				ws[i] += float32(v)
			}
			continue
		}
		// (W·D·Hd⁻¹)ᵀ = Hd⁻¹·(Dᵀ·Wᵀ): N×m, one right-hand side per row.
		gemm.Dgemm(true, true, n, m, n, 1, c.d, n, w64[:m*n], n, 0, out[:n*m], m)
		chol.Solve(c.u, n, out[:n*m], m)
		for r := range m {
			row := ws[r*n : (r+1)*n]
			for j := range row {
				row[j] += float32(out[j*m+r])
			}
		}
	}
	return nil
}

// transposeSquare transposes the n×n row-major matrix a in place.
func transposeSquare(a []float64, n int) {
	for i := range n {
		for j := i + 1; j < n; j++ {
			a[i*n+j], a[j*n+i] = a[j*n+i], a[i*n+j]
		}
	}
}

// correctionRows is how many rows a correction multiplies at once.
const correctionRows = 512
