package convert

import (
	"sync"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/llama"
)

// MaxTokenShift bounds, in bits, how far token steps move a token's row
// from the matrix's typical step either way: rows of tokens the
// calibration text never used are coded at most 4 times coarser than the
// typical row, so that text that does use them is not ruined.
const MaxTokenShift = 2

// tokenPrior is added to every token's count in the calibration text, so
// that tokens it does not contain keep a weight (the Krichevsky–Trofimov
// estimator's half count).
const tokenPrior = 0.5

// tokenWeights counts every token of docs below vocab, plus tokenPrior.
// A token's row of the embedding is read once per occurrence as input,
// and its row of the classifier matters to the loss about as often as
// the token is likely, which on average is its frequency: both roles
// weigh a row's error by how often its token occurs.
func tokenWeights(docs [][]int, vocab int) []float64 {
	w := make([]float64, vocab)
	for i := range w {
		w[i] = tokenPrior
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

// tokenSteps holds what token steps need of a conversion, computed once.
type tokenSteps struct {
	once    sync.Once
	weights []float64 // per token, from the calibration text
	vocab   map[string]bool
}

// vocabMatrix reports whether guidance gives it token steps: a lossy
// matrix of vocabulary rows (the token embedding or the classifier) of the
// calibration model, not stored transposed.
func (c *conversion) vocabMatrix(it *item, transposed bool) bool {
	g := c.o.Guidance
	if g == nil || !g.TokenSteps || g.Calib == nil || transposed || len(it.shape) != 2 {
		return false
	}
	c.tokens.once.Do(func() {
		m := g.Calib.model()
		cfg := m.Config()
		c.tokens.weights = tokenWeights(g.Calib.Docs, cfg.VocabSize)
		c.tokens.vocab = map[string]bool{}
		for _, ci := range c.items {
			if name, ok := m.ModelName(ci.info.Name); ok && (name == llama.NameEmbedding || name == llama.NameOutput) {
				c.tokens.vocab[ci.info.Name] = true
			}
		}
	})
	return c.tokens.vocab[it.info.Name] && it.shape[0] == uint64(len(c.tokens.weights))
}

// applyTokenSteps codes a vocabulary matrix with token steps: viewed
// transposed, each token's row is a codec column whose step follows the
// token's frequency in the calibration text (tokenFactors). A vocabulary
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
