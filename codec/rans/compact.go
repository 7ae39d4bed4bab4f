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
	var best *Table
	bestSize := 0
	for p := minPrec; p <= maxPrec; p++ {
		t, err := Build(sample, p)
		if err != nil {
			return nil, err
		}
		b, err := t.AppendBinary(nil)
		if err != nil {
			return nil, err
		}
		n, err := EstimateSize(sample, []*Table{t})
		if err != nil {
			return nil, err
		}
		if size := len(b) + n; best == nil || size < bestSize {
			best, bestSize = t, size
		}
	}
	return best, nil
}
