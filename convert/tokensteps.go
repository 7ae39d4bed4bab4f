package convert

import (
	"context"
	"math"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/llama"
)

// MaxTokenShift bounds, in bits, how far token steps move a token's row
// from the matrix's typical step either way: rows of tokens the
// calibration text never used are coded at most 4 times coarser than the
// typical row, so that text that does use them is not ruined.
const MaxTokenShift = 2

// tokenPrior is added to every token's weight, so that tokens the
// calibration text neither contains nor makes likely keep a weight (the
// Krichevsky–Trofimov estimator's half count).
const tokenPrior = 0.5

// PredictedTokens bounds the calibration positions whose predictions
// token steps sum (predictedCounts): one forward pass of the original
// model over that many tokens, with the classifier.
const PredictedTokens = 8192

// tokenWeights returns, per token below vocab, how much an error in its
// row of the embedding or the classifier costs: its count in docs (a row
// of the embedding is read once per occurrence as input) plus pred[t],
// the probability the model gave it summed over positions (the
// classifier's logit t enters the loss's Hessian with weight p_t(1−p_t),
// about p_t), plus tokenPrior. The predicted mass also smooths the
// counts: text the calibration never saw uses tokens it did not contain
// but that the model finds likely, which counts alone give only the
// prior. pred may be nil.
func tokenWeights(docs [][]int, pred []float64, vocab int) []float64 {
	w := make([]float64, vocab)
	for i := range w {
		w[i] = tokenPrior
		if i < len(pred) {
			w[i] += pred[i]
		}
	}
	for _, d := range docs {
		for _, t := range d {
			if t >= 0 && t < vocab {
				w[t]++
			}
		}
	}
	return w
}

// predictedCounts runs the original model bm over the calibration windows
// ws, at most PredictedTokens positions of them, and returns per token the
// softmax probability the model gave it summed over those positions,
// scaled up to all of ws's positions.
func predictedCounts(ctx context.Context, bm calibModel, ws [][]int) ([]float64, error) {
	cfg := bm.Config()
	var total, used int
	var sub [][]int
	for _, w := range ws {
		total += len(w)
		if used < PredictedTokens {
			n := min(len(w), PredictedTokens-used)
			sub = append(sub, w[:n])
			used += n
		}
	}
	if used == 0 {
		return nil, nil
	}
	run, err := llama.NewBlockRunner(cfg)
	if err != nil {
		return nil, err
	}
	emb, err := bm.Tensor(llama.NameEmbedding)
	if err != nil {
		return nil, err
	}
	xs, err := finalStream(ctx, bm, run, sub, emb)
	if err != nil {
		return nil, err
	}
	norm, err := bm.Tensor(llama.NameNorm)
	if err != nil {
		return nil, err
	}
	cls, err := bm.Classifier()
	if err != nil {
		return nil, err
	}
	pred := make([]float64, cfg.VocabSize)
	e := make([]float64, cfg.VocabSize)
	// Logits of a few rows at a time: a window's rows times a vocabulary
	// of 128 k would be a gigabyte.
	const rows = 32
	for _, x := range xs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for lo := 0; lo < len(x); lo += rows * cfg.Dim {
			logits := run.Logits(norm, cls, x[lo:min(lo+rows*cfg.Dim, len(x))])
			for p := 0; p < len(logits); p += cfg.VocabSize {
				addSoftmax(pred, e, logits[p:p+cfg.VocabSize])
			}
		}
	}
	scale := float64(total) / float64(used)
	for t := range pred {
		pred[t] *= scale
	}
	return pred, nil
}

// addSoftmax adds softmax(z) to sum, using e (len(z) values) as scratch.
func addSoftmax(sum, e []float64, z []float32) {
	hi := z[0]
	for _, v := range z {
		hi = max(hi, v)
	}
	var den float64
	for t, v := range z {
		e[t] = math.Exp(float64(v - hi))
		den += e[t]
	}
	for t := range z {
		sum[t] += e[t] / den
	}
}

// tokenFactors returns the scale factor of each row of the rows×cols
// matrix x for token steps: the codec, viewing the matrix transposed so
// that its columns are tokens, steps row r by its RMS times the factor.
// As with column steps (columnFactors) the distortion of row r is
// weighted by a_r = w_r·mean(x_r²), so the optimal step in weight units
// falls as 1/√w_r: the factor is (a_r/geomean(a))^(-1/2), clamped to
// ±MaxTokenShift bits.
func tokenFactors(w []float64, x []float32, rows int) []float32 {
	cols := len(x) / rows
	a := make([]float64, rows)
	for r := range rows {
		var sq float64
		for _, v := range x[r*cols : (r+1)*cols] {
			sq += float64(v) * float64(v)
		}
		a[r] = sq / float64(cols) * w[r]
	}
	return stepFactors(a, MaxTokenShift)
}

// tokenSteps holds what token steps need of a conversion
// (prepareTokenSteps).
type tokenSteps struct {
	weights []float64 // per token, from the calibration text
	vocab   map[string]bool
}

// prepareTokenSteps weighs the tokens for token steps and finds the
// vocabulary matrices, when guidance asks for token steps.
func (c *conversion) prepareTokenSteps(ctx context.Context) error {
	g := c.o.Guidance
	if g == nil || !g.TokenSteps || g.Calib == nil || (g.Calib.Model == nil && g.Calib.Lazy == nil) {
		return nil
	}
	m := g.Calib.model()
	cfg := m.Config()
	c.tokens.vocab = map[string]bool{}
	for _, it := range c.items {
		if name, ok := m.ModelName(it.info.Name); ok && (name == llama.NameEmbedding || name == llama.NameOutput) && codec.Lossy(it.codec) {
			c.tokens.vocab[it.info.Name] = true
		}
	}
	if len(c.tokens.vocab) == 0 {
		return nil
	}
	pred, err := predictedCounts(ctx, m, llama.Windows(g.Calib.Docs, g.Calib.window(), 0))
	if err != nil {
		return err
	}
	c.tokens.weights = tokenWeights(g.Calib.Docs, pred, cfg.VocabSize)
	return nil
}

// vocabMatrix reports whether guidance gives it token steps: a lossy
// matrix of vocabulary rows (the token embedding or the classifier) of the
// calibration model, not stored transposed.
func (c *conversion) vocabMatrix(it *item, transposed bool) bool {
	g := c.o.Guidance
	if g == nil || !g.TokenSteps || g.Calib == nil || transposed || len(it.shape) != 2 {
		return false
	}
	return c.tokens.vocab[it.info.Name] && it.shape[0] == uint64(len(c.tokens.weights))
}

// applyTokenSteps codes a vocabulary matrix with token steps: viewed
// transposed, each token's row is a codec column whose step follows the
// token's weight in the calibration text (tokenWeights, tokenFactors). A vocabulary
// of tens of thousands of rows has no usable input Hessian over its
// tokens, so the matrix is coded without LDLQ; on stories15M, where the
// tied embedding is 60 % of the weights and 65 k calibration tokens use
// 2.7 k of the 32 k tokens, this was worth far more than LDLQ over its
// 288 input channels.
func (c *conversion) applyTokenSteps(it *item, o *codec.EncodeOptions, t *codec.Tensor) error {
	x, err := dtype.ToFloat32(nil, t.Data, t.DType)
	if err != nil {
		return err
	}
	o.Transposed = true
	o.Hessian, o.LDLQBlock, o.Levels = nil, 0, nil
	o.ScaleFactors = tokenFactors(c.tokens.weights, x, int(it.shape[0]))
	return nil
}
