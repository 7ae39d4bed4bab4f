// Package mlp evaluates the small decoder networks of the neural weight
// codec: a fast, bit-exact float32 multilayer perceptron.
//
// Decoding a neural-codec tensor runs every 16-weight chunk through a
// decoder MLP, so the MLP's output is part of the format: it must come out
// bit-identical on every platform and code path. The arithmetic is fixed in
// FORMAT.md, Appendix A.2 (and in [nwc/spec.MLPForward], the reference this
// package is tested against): each product and each sum is rounded to
// float32 on its own, sums run over the inputs in increasing order, and
// there is no fused multiply-add. Vector kernels therefore vectorize over
// output neurons and batch rows, never over the summed index.
//
// A [Net] is the portable description (it marshals to a compact binary
// form). [Pack] turns it into a [Packed] network laid out for the kernels;
// [Packed.Forward] evaluates a batch. On amd64 with AVX2 the kernel is
// hand-written assembly (VMULPS/VADDPS, no FMA) chosen at run time; other
// CPUs and architectures use a pure-Go kernel with the same results.
//
// # Concurrency
//
// A Packed network is immutable and safe for concurrent use; each goroutine
// passes its own [Scratch].
package mlp

import (
	"errors"
	"math"
	"strconv"

	"github.com/nwcodec/nwc/format"
)

// Limits on a network. They are part of the serialized format: a network
// that exceeds one is invalid, and they bound what a parser allocates.
const (
	MaxLayers = 64      // layers in a network
	MaxWidth  = 4096    // In and Out of a layer
	MaxLevels = 256     // importance levels of the embedding (levels are bytes)
	MaxParams = 1 << 24 // weights, biases and embedding values together
)

// Layer flags, as stored in the serialized form.
const (
	flagReLU     = 1 << 0
	flagResidual = 1 << 1
	flagsKnown   = flagReLU | flagResidual
)

// CanonicalNaN is the bit pattern of every NaN in a network's output. The
// hardware chooses which NaN an operation on NaNs returns (x86 keeps an
// operand's payload, arm64 returns its positive default NaN); replacing them
// all by one value makes the output bits portable.
const CanonicalNaN uint32 = 0x7fc00000

// A Layer is one dense layer: y[j] = B[j] + Σ_k x[k]·W[j*In+k], then the
// optional activation and residual connection.
type Layer struct {
	In, Out int
	// W holds Out×In weights, row-major: W[j*In+k] multiplies input k into
	// output j.
	W []float32
	// B holds the Out biases.
	B []float32
	// ReLU replaces the dense output v by v if v > 0, else +0; NaN and −0
	// give +0.
	ReLU bool
	// Residual adds the layer input to the (activated) dense output,
	// rounding once; it requires In == Out. With an embedding, the output of
	// every residual layer is then scaled by the embedding vector of the
	// sample's importance level.
	Residual bool
}

// A Net is a decoder MLP: layers applied in order, each one's Out the next
// one's In.
//
// Arithmetic (normative). All values are IEEE 754 binary32; every operation
// is rounded to nearest, ties to even, separately. For each output j a layer
// computes
//
//	acc = B[j]
//	for k = 0, 1, …, In−1 (in this order):  acc = fl(acc + fl(x[k]·W[j][k]))
//	if ReLU:      acc = acc if acc > 0, else +0
//	if Residual:  acc = fl(x[j] + acc)
//	              then, if Embed != nil, acc = fl(acc · Embed[level][j])
//
// No multiply-add is fused and no sum is reassociated. Subnormals are kept
// (no flush to zero). Finally every NaN of the network output is replaced by
// [CanonicalNaN]. Weights, biases and embedding values must be finite; inputs
// may be anything.
type Net struct {
	Layers []Layer
	// Embed is nil or holds one scale vector per importance level (at most
	// MaxLevels). Every vector has the width of the residual layers, which
	// must then all be equally wide, and there must be at least one.
	Embed [][]float32
}

// ErrNet reports an invalid network, either built by the caller and
// rejected by [Net.Validate] or read by [Net.UnmarshalBinary]. Every
// [NetError] also satisfies errors.Is(err, format.ErrFormat), because a
// network stored in a file is part of the file format.
var ErrNet = errors.New("mlp: invalid network")

// A NetError describes why a network was rejected.
type NetError struct {
	// Offset is the byte offset in the serialized form at which the
	// problem was found, or -1 for a network validated in memory.
	Offset int
	Reason string
}

// Error formats the reason with its offset.
func (e *NetError) Error() string {
	if e.Offset < 0 {
		return "mlp: invalid network: " + e.Reason
	}
	return "mlp: invalid network at offset " + strconv.Itoa(e.Offset) + ": " + e.Reason
}

// Is reports whether target is [ErrNet] or [format.ErrFormat].
func (e *NetError) Is(target error) bool { return target == ErrNet || target == format.ErrFormat }

func netErr(off int, reason string) error { return &NetError{Offset: off, Reason: reason} }

// In returns the input width of the network (0 for an empty one).
func (n *Net) In() int {
	if len(n.Layers) == 0 {
		return 0
	}
	return n.Layers[0].In
}

// Out returns the output width of the network (0 for an empty one).
func (n *Net) Out() int {
	if len(n.Layers) == 0 {
		return 0
	}
	return n.Layers[len(n.Layers)-1].Out
}

// Levels returns the number of importance levels the network accepts: the
// number of embedding vectors, or 1 without an embedding (level 0 only).
func (n *Net) Levels() int {
	if n.Embed == nil {
		return 1
	}
	return len(n.Embed)
}

// Validate checks shapes, limits and values: every layer within the limits
// and chained to the previous one, residual layers square, slices of the
// right lengths, every parameter finite, and the embedding consistent.
// Errors satisfy errors.Is(err, ErrNet) and errors.Is(err, format.ErrFormat).
func (n *Net) Validate() error {
	if err := n.validateShape(-1); err != nil {
		return err
	}
	for i := range n.Layers {
		l := &n.Layers[i]
		if len(l.W) != l.In*l.Out || len(l.B) != l.Out {
			return netErr(-1, "layer "+strconv.Itoa(i)+": parameter slices do not match the shape")
		}
		if !finite(l.W) || !finite(l.B) {
			return netErr(-1, "layer "+strconv.Itoa(i)+": non-finite parameter")
		}
	}
	w := n.embedWidth()
	for lv, e := range n.Embed {
		if len(e) != w {
			return netErr(-1, "embedding of level "+strconv.Itoa(lv)+" has the wrong width")
		}
		if !finite(e) {
			return netErr(-1, "embedding of level "+strconv.Itoa(lv)+": non-finite value")
		}
	}
	return nil
}

// validateShape checks everything but the parameter values; off is the
// offset reported in errors.
func (n *Net) validateShape(off int) error {
	if len(n.Layers) == 0 {
		return netErr(off, "no layers")
	}
	if len(n.Layers) > MaxLayers {
		return netErr(off, "more than "+strconv.Itoa(MaxLayers)+" layers")
	}
	params := 0
	resWidth := 0
	for i, l := range n.Layers {
		at := "layer " + strconv.Itoa(i) + ": "
		if l.In < 1 || l.In > MaxWidth || l.Out < 1 || l.Out > MaxWidth {
			return netErr(off, at+"width out of range [1, "+strconv.Itoa(MaxWidth)+"]")
		}
		if i > 0 && l.In != n.Layers[i-1].Out {
			return netErr(off, at+"input width differs from the previous output width")
		}
		if l.Residual {
			if l.In != l.Out {
				return netErr(off, at+"residual layer is not square")
			}
			if resWidth != 0 && l.Out != resWidth && n.Embed != nil {
				return netErr(off, at+"residual layers of different widths share the embedding")
			}
			resWidth = l.Out
		}
		params += l.In*l.Out + l.Out // ≤ 64 × 4096 × 4097: no overflow
	}
	if n.Embed != nil {
		if len(n.Embed) == 0 || len(n.Embed) > MaxLevels {
			return netErr(off, "embedding level count out of range [1, "+strconv.Itoa(MaxLevels)+"]")
		}
		if resWidth == 0 {
			return netErr(off, "embedding without a residual layer")
		}
		params += len(n.Embed) * resWidth
	}
	if params > MaxParams {
		return netErr(off, "more than "+strconv.Itoa(MaxParams)+" parameters")
	}
	return nil
}

// embedWidth returns the width of the residual layers (0 if none).
func (n *Net) embedWidth() int {
	for _, l := range n.Layers {
		if l.Residual {
			return l.Out
		}
	}
	return 0
}

// Forward evaluates the network on batch samples: src holds batch×In inputs
// and dst receives batch×Out outputs, row-major. levels holds each sample's
// importance level when the network has an embedding (it may be nil
// otherwise). It packs the network on every call; decoders that evaluate the
// same network repeatedly use [Pack] once and [Packed.Forward].
//
// Forward panics if the network is invalid or the slices are too short, and
// returns an error wrapping [format.ErrFormat] for a level out of range.
func (n *Net) Forward(dst, src []float32, levels []uint8, batch int) error {
	if err := n.Validate(); err != nil {
		panic(err)
	}
	p := Pack(n)
	return p.forward(dst, src, levels, batch, new(Scratch), kernelGeneric)
}

func finite(v []float32) bool {
	for _, x := range v {
		if math.IsInf(float64(x), 0) || x != x {
			return false
		}
	}
	return true
}
