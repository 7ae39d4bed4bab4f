package spec

import "math"

// MLPCanonicalNaN is the bit pattern of every NaN a decoder MLP outputs:
// the positive quiet NaN with an empty payload. Hardware differs in which NaN
// an operation on NaNs returns (x86 propagates an operand's payload and its
// default NaN is negative; arm64 returns the positive default NaN), so the
// NaN-ness of an output is portable but its bits are not until they are
// replaced by this one value.
const MLPCanonicalNaN uint32 = 0x7fc00000

// An MLPLayer is one dense layer of a decoder MLP, in the reference form.
type MLPLayer struct {
	In, Out int
	// W holds Out×In weights, row-major: W[j*In+k] multiplies input k
	// into output j.
	W []float32
	// B holds the Out biases.
	B []float32
	// ReLU applies max(v, +0) to the dense output (NaN and −0 give +0).
	ReLU bool
	// Residual adds the layer input to the (activated) dense output; it
	// requires In == Out. The importance-level embedding, if any, scales
	// the output of every residual layer.
	Residual bool
}

// MLPForward evaluates a decoder MLP on one sample x and returns a new
// slice with the output. embed is nil or holds one scale vector per
// importance level; level selects the vector.
//
// The arithmetic is normative (FORMAT.md, "Decoder MLP"): every operation is
// an IEEE 754 binary32 operation rounded to nearest, ties to even, on its
// own; nothing is fused or reassociated. A layer computes, for each output j,
//
//	acc = B[j]
//	for k = 0, 1, …, In−1:  acc = fl(acc + fl(x[k]·W[j][k]))
//	if ReLU:                acc = acc if acc > 0, else +0
//	if Residual:            acc = fl(x[j] + acc)
//	                        and, with an embedding, acc = fl(acc · E[level][j])
//
// and NaNs in the final output are replaced by [MLPCanonicalNaN].
//
// MLPForward trusts its arguments: shapes that do not match make it panic.
func MLPForward(layers []MLPLayer, embed [][]float32, level int, x []float32) []float32 {
	cur := append([]float32(nil), x...)
	for _, l := range layers {
		if len(cur) != l.In {
			panic("spec: MLP layer input width mismatch")
		}
		out := make([]float32, l.Out)
		for j := range l.Out {
			acc := l.B[j]
			for k := range l.In {
				// The explicit conversion rounds the product to
				// float32, which the Go spec says forbids fusing it
				// with the addition into an FMA.
				acc = acc + float32(cur[k]*l.W[j*l.In+k])
			}
			if l.ReLU {
				acc = mlpReLU(acc)
			}
			if l.Residual {
				acc = cur[j] + acc
				if embed != nil {
					acc = float32(acc * embed[level][j])
				}
			}
			out[j] = acc
		}
		cur = out
	}
	for i, v := range cur {
		if v != v {
			cur[i] = math.Float32frombits(MLPCanonicalNaN)
		}
	}
	return cur
}

// mlpReLU is max(v, +0) with the two cases IEEE max leaves open settled:
// NaN gives +0 (NaN > 0 is false) and −0 gives +0.
func mlpReLU(v float32) float32 {
	if v > 0 {
		return v
	}
	return 0
}
