package convert

import (
	"math"
	"sort"
)

// A Sensitivity says how much one matrix's quantization error costs: the
// expected output error per weight per unit of normalized distortion. For
// a linear layer with input Hessian H and per-column RMS s_j it is
// Σ_j s_j²·H_jj / cols — E‖ΔW X‖² grows by that much per weight when
// every column's error variance is s_j² times the normalized distortion.
type Sensitivity struct {
	Name     string
	Elements uint64
	Value    float64
}

// MaxBitsShift bounds how far bit allocation by the Hessian proxy moves a
// matrix from the file's rate, in bits (a factor 2^MaxBitsShift of the
// step). The proxy ignores everything after the layer, so trusting it
// further hurts: on stories260K at 4 bits per weight a 2-bit clamp more
// than doubled the KL divergence from the original (0.098 → 0.225 nats per
// token, nwc eval kl).
const MaxBitsShift = 1.0

// MaxMeasuredBitsShift is the bound for sensitivities measured on the
// model (Probe). They see the whole network, and matrices really do
// differ by more than a bit: on stories260K a 2-bit clamp lowered the KL
// divergence from the original by 7–11 % at 3, 4 and 5 bits per weight
// against 1 bit (4 bits: 0.0801 → 0.0715 nats per token), and 3 bits was
// no better.
const MaxMeasuredBitsShift = 2.0

// StepFactors turns sensitivities into per-matrix step factors that
// minimize the total output error Σ n_i·a_i·D_i for a given file size. With
// a quantizer whose distortion is proportional to the step squared at a
// rate falling one bit per doubling of the step, equal slopes give
// step_i ∝ 1/√a_i: a matrix four times as sensitive gets half the step,
// one bit more. Factors are normalized to an element-weighted geometric
// mean of 1 (so the file's step keeps its meaning) and clamped to
// 2^±maxShift; matrices without a positive, finite sensitivity are
// left out (factor 1).
func StepFactors(sens []Sensitivity, maxShift float64) map[string]float64 {
	var es []Sensitivity
	for _, s := range sens {
		if s.Elements > 0 && s.Value > 0 && !math.IsInf(s.Value, 0) {
			es = append(es, s)
		}
	}
	if len(es) == 0 {
		return nil
	}
	sort.Slice(es, func(i, j int) bool { return es[i].Name < es[j].Name })
	var n, logSum float64
	for _, s := range es {
		n += float64(s.Elements)
		logSum += float64(s.Elements) * math.Log2(s.Value)
	}
	geo := logSum / n
	out := make(map[string]float64, len(es))
	for _, s := range es {
		shift := min(max(0.5*(math.Log2(s.Value)-geo), -maxShift), maxShift)
		out[s.Name] = math.Exp2(-shift)
	}
	return out
}
