package rans

// BuildCompact returns the table fitted to sample (as [Build]) at the
// precision in [minPrec, maxPrec] that makes the serialized table plus the
// estimated stream of sample ([EstimateSize]) smallest; ties go to the
// lower precision. It is deterministic, like everything it calls.
//
// A table stored per tensor is paid for once per tensor: on a small
// matrix a 14-bit table of 60 values (mostly 2-byte frequencies) can cost
// more than the finer probabilities save. Decoders are unaffected; every
// precision is valid.
func BuildCompact(sample []int32, minPrec, maxPrec uint) (*Table, error) {
	return NewHistogram(sample).BuildCompact(minPrec, maxPrec)
}

// BuildCompact is [BuildCompact] of the sample h counts: the same table,
// from one pass over the sample instead of two per precision.
func (h *Histogram) BuildCompact(minPrec, maxPrec uint) (*Table, error) {
	var best *Table
	bestSize := 0
	for p := minPrec; p <= maxPrec; p++ {
		t, err := buildHist(h, p)
		if err != nil {
			return nil, err
		}
		b, err := t.AppendBinary(nil)
		if err != nil {
			return nil, err
		}
		if size := len(b) + h.EstimateSize(t); best == nil || size < bestSize {
			best, bestSize = t, size
		}
	}
	return best, nil
}
