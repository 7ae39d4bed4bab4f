// Package nwcenc is the encoder of nwc, the learned codec of package
// neural: it registers the "nwc" encoder (the built-in default model) with
// package codec, and Encoder codes tensors with any trained model.
//
// The encoder codes each tensor with the learned transform and as the
// plain scalar quantizer (trellis-coded where that wins) and keeps the
// better at equal rate; given a layer's input Hessian
// ([codec.EncodeOptions.Hessian]) both codings run with LDLQ error
// compensation (package ldlq), which leaves the format and the decoder
// unchanged. Programs that only read files import package neural alone
// and link none of this.
package nwcenc

import (
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/codec/mlp"
	"github.com/nwcodec/nwc/codec/neural"
	"github.com/nwcodec/nwc/codec/rans"
	"github.com/nwcodec/nwc/codec/trellis"
)

// defaultEncoder is the registered encoder: it codes with the built-in
// default model.
type defaultEncoder struct{}

func init() { codec.RegisterEncoder(neural.ID, defaultEncoder{}) }

// defaultEnc is the Encoder of the built-in model, made once.
var defaultEnc = sync.OnceValues(func() (*Encoder, error) {
	c, err := neural.Default()
	if err != nil {
		return nil, err
	}
	return New(c), nil
})

// Default returns the Encoder of the built-in default model, the one
// registered as the "nwc" encoder.
func Default() (*Encoder, error) { return defaultEnc() }

// Encode implements codec.Encoder with the built-in default model.
func (defaultEncoder) Encode(t *codec.Tensor, opts *codec.EncodeOptions) (*codec.Encoded, error) {
	e, err := Default()
	if err != nil {
		return nil, err
	}
	return e.Encode(t, opts)
}

// An Encoder codes tensors with one trained codec. It is immutable and
// safe for concurrent use.
type Encoder struct {
	c *neural.Codec
	// force overrides the encoder's choice between the learned transform
	// and the scalar quantizer (forceAuto, forcePlain, forceLearned), so
	// that tests and benchmarks can exercise each decoding path.
	force int
	// roundPlain makes the scalar path round each latent on its own
	// instead of trellis-coding the chunk, for tests and comparisons.
	roundPlain bool
}

const (
	forceAuto = iota
	forcePlain
	forceLearned
)

// New returns the encoder of codec c.
func New(c *neural.Codec) *Encoder { return &Encoder{c: c} }

// Codec returns the codec e encodes with.
func (e *Encoder) Codec() *neural.Codec { return e.c }

// Learned returns a copy of e that always keeps the learned transform
// instead of choosing, tensor by tensor, whichever of it and the scalar
// path is better at equal rate. With the default model the scalar path
// (trellis-coded where that wins) is the better one almost everywhere, so
// files that must exercise a decoder's network — conformance files,
// benchmarks — need this.
func (e *Encoder) Learned() *Encoder {
	d := *e
	d.force = forceLearned
	return &d
}

// Encode compresses t with c's codec. The tensor is viewed as chunk.Layout
// describes, columns are normalized to unit RMS and cut into chunks of 16
// rows, and each chunk is coded at its column's level with step
// opts.Step·m_q (DefaultStep when 0). The encoder codes the tensor twice,
// with the learned transform and as the plain scalar quantizer, and keeps
// whichever has the lower rate–distortion cost (squared error in units of
// the step at the equal-slope weight, plus bits counted from the real
// tables), so the learned codec is never worse than the scalar one on a
// tensor beyond the few bytes of its parameters.
//
// With opts.Hessian (cols×cols, the second moment of the layer's inputs)
// each of the two codings runs its own LDLQ pass (package ldlq) over
// blocks of opts.LDLQBlock columns: every block is normalized and coded
// as its columns stand once the output error of the blocks before it has
// been folded in, and its decoded values feed the next blocks. The
// decoder is unchanged. A Hessian of the wrong size, or one that is not
// positive definite even after damping, gives an error wrapping
// codec.ErrOptions.
func (c *Encoder) Encode(t *codec.Tensor, opts *codec.EncodeOptions) (*codec.Encoded, error) {
	if opts == nil {
		opts = &codec.EncodeOptions{}
	}
	step := opts.Step
	if step == 0 {
		step = neural.DefaultStep
	}
	if err := checkStep(step); err != nil {
		return nil, err
	}
	l, w, err := chunk.Load(t, opts.Transposed)
	if err != nil {
		return nil, err
	}
	if err := chunk.CheckLevels(opts.Levels, l.Cols); err != nil {
		return nil, err
	}
	if err := chunk.CheckFactors(opts.ScaleFactors, l.Cols); err != nil {
		return nil, err
	}
	if opts.Hessian != nil && len(opts.Hessian) != l.Cols*l.Cols {
		return nil, fmt.Errorf("%w: Hessian has %d entries, want %d×%d", codec.ErrOptions, len(opts.Hessian), l.Cols, l.Cols)
	}
	levels := opts.Levels
	if !slicesAny(levels) {
		levels = nil
	}
	ends, err := chunk.GroupRows(l, opts.GroupBytes)
	if err != nil {
		return nil, err
	}
	p := neural.StepsFor(step)
	p.Transposed = opts.Transposed
	enc := &codec.Encoded{View: l.View, Blob: &codec.BlobData{Codec: neural.ID, Data: c.c.Blob()}}
	if l.Len() == 0 {
		enc.Params = p.Marshal()
		enc.Blob = nil
		return enc, nil
	}
	rows, cols := l.Rows, l.Cols
	colLv := make([]uint8, cols)
	for j := range colLv {
		colLv[j] = levelOf(levels, j)
	}
	starts := neural.GroupStarts(rows, ends)
	run := pass{c: c, w: w, rows: rows, cols: cols, colLv: colLv, hessian: opts.Hessian, factors: opts.ScaleFactors, starts: starts, block: max(opts.LDLQBlock, 0)}
	// Chunks in coding order: rows of chunks, columns within a row.
	nb := chunk.Chunks(rows)
	const k = chunk.Rows
	lv := make([]uint8, nb*cols)
	for ci := range lv {
		lv[ci] = colLv[ci%cols]
	}
	base := p
	// Code the tensor every way and keep the trellis, or the learned
	// transform, only if it beats rounding at equal rate. The learned
	// transform is judged by the tensor's own local rate–distortion slope
	// (measured with a 10 % coarser step): at low rates a bit buys more
	// than the 6.02 dB of high-rate theory. The trellis, which minimizes
	// error alone, gains about 1 dB from 3 bits per weight up but can
	// lose below 2.
	measured := func(cd *coding, err error) (*coding, rd, error) {
		if err != nil {
			return nil, rd{}, err
		}
		r, err := c.measure(cd.x, cd.y, lv, &cd.p, cd.scales, rows, cols, starts)
		return cd, r, err
	}
	measurePlain := func(p neural.Params, trellis bool) (*coding, rd, error) { return measured(run.plain(p, trellis)) }
	measureLearned := func(p neural.Params) (*coding, rd, error) { return measured(run.code(p, true)) }
	// The trellis and the learned transform spend a little more or less
	// than rounding at the same step. atRateOf gives the step at which a
	// coding that cost got should cost what the chosen scalar coding pr
	// does (one bit per weight per doubling of the step), and whether that
	// step is valid; the rates then differ by hundredths of a bit per
	// weight at most, which beats values at a conservative 8 dB per bit.
	n := float64(rows * cols)
	atRateOf := func(got, pr rd) (neural.Params, bool) {
		s := step * math.Exp2((got.bits-pr.bits)/n)
		p := neural.StepsFor(s)
		p.Transposed = base.Transposed
		return p, checkStep(s) == nil
	}
	beats := func(r, pr rd) bool {
		return r.dist > 0 && pr.dist > 0 && 10*math.Log10(pr.dist/r.dist) > 8*(r.bits-pr.bits)/n
	}
	// coarser measures rounding at a 10 % coarser step, for the slope.
	coarser := func() (rd, error) {
		_, r, err := measurePlain(neural.StepsFor(step*1.1), false)
		return r, err
	}
	plain, pr, err := measurePlain(base, false)
	if err != nil {
		return nil, err
	}
	trellisPlain := false
	if !c.roundPlain {
		tp, tr, err := measurePlain(base, true)
		if err != nil {
			return nil, err
		}
		// Keep the trellis only if it has less error at equal rate: a
		// tensor-by-tensor improvement, whatever rate the other tensors
		// get.
		if pt, ok := atRateOf(tr, pr); ok {
			if tp, tr, err = measurePlain(pt, true); err != nil {
				return nil, err
			}
		}
		if beats(tr, pr) {
			plain, pr, trellisPlain = tp, tr, true
		}
	}
	chosen := plain
	tables, tableAux := pr.tabs, pr.aux
	if opts.NoBlob && c.force != forceLearned {
		// The caller judged that the decoder's weights would cost the
		// file more than the learned transform can save.
	} else {
		learned, lr, err := measureLearned(base)
		if err != nil {
			return nil, err
		}
		win := func() bool { return lr.better(pr, coarser) }
		if trellisPlain && c.force == forceAuto {
			// Against the trellis, compare at equal rate, as the trellis
			// was chosen.
			if pl, ok := atRateOf(lr, pr); ok {
				if learned, lr, err = measureLearned(pl); err != nil {
					return nil, err
				}
			}
			win = func() bool { return beats(lr, pr) }
		}
		if c.force == forceLearned || c.force == forceAuto && win() {
			chosen = learned
			tables, tableAux = lr.tabs, lr.aux
		}
	}

	p = chosen.p
	enc.Params = p.Marshal()
	if p.Plain {
		// The scalar quantizer needs no decoder: a file whose tensors all
		// fall back carries no blob.
		enc.Blob = nil
	} else if opts.BlobRef {
		_, enc.Blob.Ref = codec.BuiltinBlob(neural.ID, c.c.BlobSHA256())
	}
	r0 := 0
	for _, r1 := range ends {
		b0, b1 := r0/k, chunk.Chunks(r1)
		data, err := neural.EncodeLatents(chosen.y[b0*cols*k:b1*cols*k], colLv, b0, b1, rows, cols, &tables)
		if err != nil {
			return nil, err
		}
		enc.Groups = append(enc.Groups, codec.EncodedGroup{End: uint64(r1) * uint64(cols), Data: data})
		r0 = r1
	}
	if opts.Transposed {
		enc.Groups[0].End = uint64(l.Len())
	}
	sa, err := chunk.AppendScales(nil, chosen.h)
	if err != nil {
		return nil, err
	}
	enc.Aux = []codec.NamedBytes{{Name: chunk.AuxScales, Data: sa}, {Name: neural.AuxTables, Data: tableAux}}
	if levels != nil {
		enc.Aux = append(enc.Aux, codec.NamedBytes{Name: chunk.AuxLevels, Data: chunk.AppendLevels(nil, levels)})
	}
	enc.Aux = sortedAux(enc.Aux)
	return enc, nil
}

func slicesAny(v []uint8) bool {
	for _, x := range v {
		if x != 0 {
			return true
		}
	}
	return false
}

// quantize rounds to the nearest integer, ties to even, saturating at
// ±2^24 where float32 stops representing every integer.
func quantize(v float64) int32 {
	const lim = 1 << 24
	return int32(math.RoundToEven(math.Max(-lim, math.Min(lim, v))))
}

// encodeBatch is the number of chunks the encoder evaluates per network
// call.
const encodeBatch = 4096

// latents runs the encoder net on every chunk: y = round(x/Δ_q + E(x, ln Δ_q)).
func (c *Encoder) latents(x []float32, lv []uint8, p *neural.Params) ([]int32, error) {
	const k = chunk.Rows
	n := len(lv)
	y := make([]int32, n*k)
	// LDLQ calls this once per column block, often with few chunks.
	in := make([]float32, min(n, encodeBatch)*(k+1))
	out := make([]float32, min(n, encodeBatch)*k)
	var sc mlp.Scratch
	for c0 := 0; c0 < n; c0 += encodeBatch {
		bn := min(encodeBatch, n-c0)
		for ci := range bn {
			copy(in[ci*(k+1):], x[(c0+ci)*k:(c0+ci+1)*k])
			in[ci*(k+1)+k] = p.Features[lv[c0+ci]]
		}
		if err := c.c.PackedEncoder().Forward(out, in, lv[c0:], bn, &sc); err != nil {
			return nil, err
		}
		for ci := range bn {
			s := float64(p.Steps[lv[c0+ci]])
			for i := range k {
				y[(c0+ci)*k+i] = quantize(float64(x[(c0+ci)*k+i])/s + float64(out[ci*k+i]))
			}
		}
	}
	return y, nil
}

// centroidOffset returns the offset δ (in 1/256 of a step, at most neural.MaxOffset)
// that minimizes the squared error of the plain reconstruction
// sign(y)·(|y| − δ)·Δ_q over the nonzero latents: the mean amount by which
// |x|/Δ_q falls short of |y|. Unimodal weights are denser toward zero
// within each cell, so the centroid sits below the cell's middle.
func centroidOffset(x []float32, y []int32, lv []uint8, p *neural.Params, scales []float32, rows, cols int, starts []bool) uint8 {
	const k = chunk.Rows
	var num, den float64
	seq := neural.NewChunkSeq(cols, starts)
	for ci, q := range lv {
		s := float64(p.Steps[q])
		// Weight by the squared real step, as the error is counted.
		w := s * float64(scales[ci%cols])
		w *= w
		st := seq.Begin(ci)
		for i := range validRows(ci/cols, rows) {
			v := y[ci*k+i]
			a := math.Abs(float64(v))
			if p.Trellis {
				if *st >= 2 {
					a -= 0.5 // grid Q1
				}
				*st = trellis.Next(*st, v)
			}
			if v == 0 {
				continue
			}
			num += w * (a - math.Abs(float64(x[ci*k+i]))/s)
			den += w
		}
	}
	if den == 0 {
		return 0
	}
	return uint8(math.Max(0, math.Min(neural.MaxOffset, math.RoundToEven(256*num/den))))
}

// quantizeAll returns the scalar quantizer's latents of the chunk-major
// array x (width chunks per chunk row): round(x/Δ_q), or with p.Trellis
// the Viterbi choice over each column of each group (starts as in
// neural.ChunkSeq), with p's offset.
func quantizeAll(x []float32, lv []uint8, p *neural.Params, width int, starts []bool) []int32 {
	const k = chunk.Rows
	if p.Trellis {
		return trellisQuantize(x, lv, p, width, starts)
	}
	y := make([]int32, len(x))
	for ci, q := range lv {
		s := float64(p.Steps[q])
		for i := range k {
			y[ci*k+i] = quantize(float64(x[ci*k+i]) / s)
		}
	}
	return y
}

// rd is one way of coding a tensor: its squared error in the weights'
// own units, its bits (latents and tables) and its tables.
type rd struct {
	dist, bits float64
	tabs       [neural.NumLevels]*rans.Table
	aux        []byte
}

// better reports whether r beats the scalar quantizer's p at equal rate.
// coarser measures the scalar quantizer at a coarser step, for the local
// slope; it is called only when the answer depends on it.
func (r rd) better(p rd, coarser func() (rd, error)) bool {
	switch {
	case r.dist <= p.dist && r.bits <= p.bits:
		return r.dist < p.dist || r.bits < p.bits
	case r.dist >= p.dist && r.bits >= p.bits:
		return false
	}
	slope := 6.02 // dB per bit per weight, the high-rate figure
	c, err := coarser()
	if err == nil && c.bits < p.bits && c.dist > p.dist && p.dist > 0 {
		slope = 10 * math.Log10(c.dist/p.dist) / (p.bits - c.bits)
	}
	if r.dist == 0 || p.dist == 0 {
		return r.dist < p.dist
	}
	return 10*math.Log10(p.dist/r.dist) > slope*(r.bits-p.bits)
}

// measure codes latents y with params p and returns the squared error of
// the real (unpadded) weights, Σ s_j²·(x − x̂)², and the bits of the
// latents and tables of the whole tensor.
func (c *Encoder) measure(x []float32, y []int32, lv []uint8, p *neural.Params, scales []float32, rows, cols int, starts []bool) (rd, error) {
	const k = chunk.Rows
	var r rd
	var err error
	if r.tabs, r.aux, err = neural.BuildTables(y, lv, rows, cols); err != nil {
		return r, err
	}
	n := len(lv)
	var sc mlp.Scratch
	in := make([]float32, encodeBatch*(k+1))
	dout := make([]float32, encodeBatch*k)
	out := make([]float32, encodeBatch*k)
	seq := neural.NewChunkSeq(cols, starts)
	for c0 := 0; c0 < n; c0 += encodeBatch {
		bn := min(encodeBatch, n-c0)
		if err := c.c.Reconstruct(out, y[c0*k:], lv[c0:], bn, p, seq, c0, in, dout, &sc); err != nil {
			return r, err
		}
		for ci := range bn {
			s := float64(scales[(c0+ci)%cols])
			for i := range validRows((c0+ci)/cols, rows) {
				e := (float64(x[(c0+ci)*k+i]) - float64(out[ci*k+i])) * s
				r.dist += e * e
			}
		}
	}
	for q, t := range r.tabs {
		if t == nil {
			continue
		}
		var syms []int32
		for ci := range n {
			if int(lv[ci]) == q {
				syms = append(syms, y[ci*k:ci*k+validRows(ci/cols, rows)]...)
			}
		}
		b, err := rans.Bits(syms, []*rans.Table{t})
		if err != nil {
			return r, err
		}
		r.bits += b
	}
	r.bits += 8 * float64(len(r.aux))
	return r, nil
}

// DefaultStep makes nwc a codec.Stepper: rate control searches its step.
func (defaultEncoder) DefaultStep() float64 { return neural.DefaultStep }

// BlobSize makes nwc a codec.BlobSizer: the bytes of the default model's
// blob, which files store once unless they reference it.
func (defaultEncoder) BlobSize() int {
	c, err := neural.Default()
	if err != nil {
		return 0
	}
	return len(c.Blob())
}

func checkStep(step float64) error {
	if !(step > 0) || math.IsInf(step, 0) || float32(step*float64(neural.StepMultiplier(neural.NumLevels-1))) == 0 {
		return fmt.Errorf("%w: step %v is not positive and finite, or too small for float32", codec.ErrOptions, step)
	}
	return nil
}

// sortedAux returns aux sections sorted by name, as the writer expects.
func sortedAux(a []codec.NamedBytes) []codec.NamedBytes {
	slices.SortFunc(a, func(x, y codec.NamedBytes) int {
		if x.Name < y.Name {
			return -1
		}
		if x.Name > y.Name {
			return 1
		}
		return 0
	})
	return a
}

func levelOf(levels []uint8, j int) uint8 {
	if levels == nil {
		return 0
	}
	return levels[j]
}

// validRows returns the rows of chunk row b that exist in a matrix of
// rows rows: 16 except in a ragged last chunk. Only they are coded.
func validRows(b, rows int) int { return min(chunk.Rows, rows-b*chunk.Rows) }

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}
