package convert

import (
	"fmt"
	"math"

	"nwc/calib"
	"nwc/codec"
	"nwc/dtype"
)

// Guidance configures output-guided compression: the input Hessians
// H = E[x xᵀ] of the linear layers (from nwc calibrate, or brought from
// elsewhere) decide which columns matter and let LDLQ compensate errors.
type Guidance struct {
	Hessians *calib.Set
	// Importance gives each column an importance level from diag(H).
	Importance bool
	Thresholds calib.Thresholds // zero value: calib.DefaultThresholds
	// LDLQ codes column blocks with error compensation.
	LDLQ bool
	// LDLQBlock is the number of columns per LDLQ block; 0 selects
	// cols/16, at least 1 and at most 128: error compensation works
	// between blocks only, so small matrices need small blocks.
	LDLQBlock int
	// Allocate spreads the target rate over the matrices by their output
	// error sensitivity (see StepFactors) instead of uniformly.
	Allocate bool
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

// apply adds the Hessian and levels of one tensor to its options.
func (g *Guidance) apply(it *item, o *codec.EncodeOptions) {
	if len(it.shape) < 2 {
		return
	}
	h := g.hessianFor(it.info.Name, it.numel/it.shape[0], o.Transposed)
	if h == nil {
		return
	}
	if g.Importance {
		th := g.Thresholds
		if th == (calib.Thresholds{}) {
			th = calib.DefaultThresholds
		}
		o.Levels = calib.Levels(h.Diag(), th)
	}
	if g.LDLQ {
		o.Hessian = h.Data
		o.LDLQBlock = g.LDLQBlock
		if o.LDLQBlock == 0 {
			o.LDLQBlock = min(max(h.N/16, 1), 128)
		}
	}
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
		w, err := dtype.ToFloat32(nil, data, it.info.DType)
		if err != nil {
			return nil, err
		}
		colSq := make([]float64, cols)
		for i, v := range w {
			colSq[uint64(i)%cols] += float64(v) * float64(v)
		}
		rows := float64(it.shape[0])
		var a float64
		for j, sq := range colSq {
			a += sq / rows * h.Data[j*h.N+j]
		}
		a /= float64(cols)
		if a > 0 && !math.IsInf(a, 0) {
			out = append(out, Sensitivity{Name: it.info.Name, Elements: it.numel, Value: a})
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("convert: bit allocation needs Hessians matching the matrices, found none")
	}
	return out, nil
}

func codecLossyWithStep(it *item) bool { return it.step > 0 && len(it.shape) >= 2 }
