package convert

import (
	"fmt"
	"math"

	"github.com/nwcodec/nwc/calib"
	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/dtype"
)

// Guidance configures output-guided compression: the input Hessians
// H = E[x xᵀ] of the linear layers (from nwc calibrate, or brought from
// elsewhere) decide which columns matter and let LDLQ compensate errors.
type Guidance struct {
	Hessians *calib.Set
	// Importance gives each column an importance level: its expected
	// share of the output error, H_jj·mean_r(W_rj²). Ranking by H_jj
	// alone would ignore that every column is normalized by its own RMS,
	// so a column's error grows with its scale squared.
	Importance bool
	Thresholds calib.Thresholds // zero value: calib.DefaultThresholds
	// ColumnSteps gives every column its own step, falling as the square
	// root of its weight in the output error (see columnFactors), through
	// the column scales the file stores anyway: finer-grained than
	// importance levels and free in the file.
	ColumnSteps bool
	// LDLQ codes column blocks with error compensation.
	LDLQ bool
	// LDLQBlock is the number of columns per LDLQ block; 0 selects
	// cols/16, at least 1 and at most 128: error compensation works
	// between blocks only, so small matrices need small blocks.
	LDLQBlock int
	// Allocate spreads the target rate over the matrices by their
	// sensitivity (see StepFactors) instead of uniformly: measured on
	// Calib as Probe configures when Probe is set, else estimated from
	// the Hessians.
	Allocate bool
	Probe    *Probe
	// Sequential codes the matrices in the order the model reads them,
	// each with a Hessian and target taken from Calib's model as
	// compressed so far (see conversion.sequential).
	Sequential bool
	// TokenSteps codes the vocabulary matrices (token embedding and
	// classifier) with a step per token that follows how often the token
	// occurs in Calib's text and how likely the model finds it there
	// (see applyTokenSteps, tokenWeights): rows of rare tokens coarser,
	// of common ones finer, at no cost in the file.
	TokenSteps bool
	// SequentialDamp is the ridge on sequential guidance's corrections,
	// relative to the mean of the input Hessian's diagonal; 0 selects
	// the package's SequentialDamp. Calibration text of many tokens
	// needs less of it.
	SequentialDamp float64
	// LayerHessians derives every matrix's input Hessian on the original
	// model from Calib a layer at a time, instead of taking it from
	// Hessians (which it overrides): what a model too large to load whole
	// gets without sequential guidance. Like sequential guidance it holds
	// one layer in memory and the Hessians in a temporary file (ToNWC).
	LayerHessians bool
	// Calib is the model and text the Hessians came from, needed by
	// Probe, Sequential and LayerHessians.
	Calib *Calibration
}

// hessianFor returns the Hessian of a matrix whose view has cols columns,
// or nil when there is none or it does not match (then the tensor is coded
// without guidance).
func (g *Guidance) hessianFor(name string, cols uint64, transposed bool) *calib.Hessian {
	if g == nil || g.Hessians == nil || transposed {
		return nil
	}
	h, ok := g.Hessians.Hessian(name)
	if !ok || uint64(h.N) != cols {
		return nil
	}
	return h
}

// apply adds the guidance of one matrix with Hessian h (nil: none) to
// its options.
func (g *Guidance) apply(it *item, h *calib.Hessian, o *codec.EncodeOptions, t *codec.Tensor) error {
	if h == nil {
		return nil
	}
	cols := it.numel / it.shape[0]
	var colSq []float64
	if g.Importance || (g.ColumnSteps && it.factors == nil) {
		var err error
		if colSq, err = columnMeanSquares(t, cols); err != nil {
			return err
		}
	}
	if g.Importance {
		th := g.Thresholds
		if th == (calib.Thresholds{}) {
			th = calib.DefaultThresholds
		}
		score := h.Diag()
		for j := range score {
			score[j] *= colSq[j]
		}
		o.Levels = calib.Levels(score, th)
	}
	if g.ColumnSteps {
		// The factors need an LDL factorization of the Hessian; rate
		// control encodes a tensor many times, so they are kept.
		if it.factors == nil {
			f, err := columnFactors(h, colSq, g.LDLQ)
			if err != nil {
				return fmt.Errorf("%s: %w", it.info.Name, err)
			}
			it.factors = f
		}
		o.ScaleFactors = it.factors
	}
	if g.LDLQ {
		o.Hessian = h.Data
		o.LDLQBlock = g.LDLQBlock
		if o.LDLQBlock == 0 {
			o.LDLQBlock = min(max(h.N/16, 1), 128)
		}
	}
	return nil
}

// columnMeanSquares returns mean_r(W_rj²) for every column of the matrix
// view (rows = shape[0]) of a tensor.
func columnMeanSquares(t *codec.Tensor, cols uint64) ([]float64, error) {
	w, err := dtype.ToFloat32(nil, t.Data, t.DType)
	if err != nil {
		return nil, err
	}
	sq := make([]float64, cols)
	for i, v := range w {
		sq[uint64(i)%cols] += float64(v) * float64(v)
	}
	rows := float64(uint64(len(w)) / cols)
	for j := range sq {
		sq[j] /= rows
	}
	return sq, nil
}

// sensitivities measures Σ_j s_j²·H_jj / cols for every lossy matrix that
// has a Hessian, reading each tensor once.
func (c *conversion) sensitivities() ([]Sensitivity, error) {
	var out []Sensitivity
	for _, it := range c.items {
		if !codecLossyWithStep(it) {
			continue
		}
		cols := it.numel / it.shape[0]
		h := c.o.Guidance.hessianFor(it.info.Name, cols, c.transposed(it))
		if h == nil {
			continue
		}
		data, err := c.src.ReadTensor(it.info.Name)
		if err != nil {
			return nil, err
		}
		colSq, err := columnMeanSquares(&codec.Tensor{DType: it.info.DType, Data: data}, cols)
		if err != nil {
			return nil, err
		}
		var a float64
		for j, sq := range colSq {
			a += sq * h.Data[j*h.N+j]
		}
		a /= float64(cols)
		if a > 0 && !math.IsInf(a, 0) {
			out = append(out, Sensitivity{Name: it.info.Name, Elements: it.numel, Value: a})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("convert: %w: bit allocation needs Hessians matching the matrices, found none", codec.ErrOptions)
	}
	return out, nil
}

func codecLossyWithStep(it *item) bool { return it.step > 0 && len(it.shape) >= 2 }
