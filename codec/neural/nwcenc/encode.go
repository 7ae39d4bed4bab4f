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
	"github.com/nwcodec/nwc/internal/parallel"
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
	// wholeChoice makes the encoder choose its coding on the whole of a
	// large matrix instead of a sample, for tests and comparisons.
	wholeChoice bool
	// loadWhole makes the encoder load a large matrix whole instead of
	// streaming it (see encodeStreamed), for tests.
	loadWhole bool
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
	if l, err := chunk.NewLayout(t.DType, t.Shape, opts.Transposed); err == nil && len(t.Data) == l.Len()*t.DType.Size() && c.streams(l, opts) {
		return c.encodeStreamed(t, l, opts, step)
	}
	l, w, err := chunk.Load(t, opts.Transposed)
	if err != nil {
		return nil, err
	}
	if opts.ReleaseInput {
		t.Data = nil
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
	base := p
	run := pass{c: c, w: w, rows: rows, cols: cols, colLv: colLv, hessian: opts.Hessian, factors: opts.ScaleFactors, starts: starts, block: max(opts.LDLQBlock, 0), jobs: opts.Jobs, interrupt: opts.Interrupt, auxWeight: 1}
	if opts.Hessian == nil {
		// Without LDLQ every pass normalizes by the same scales.
		run.scales = chunk.CodingScales(w, rows, cols, opts.ScaleFactors)
	}
	noBlob := opts.NoBlob && c.force != forceLearned
	var (
		chosen   *coding
		tables   [neural.NumLevels]*rans.Table
		tableAux []byte
	)
	// A large matrix is chosen for on a sample, then coded whole once the
	// chosen way, at the chosen step (and, for the trellis, with the
	// offset fitted to the sample, the trellis pass that fits it being as
	// costly as the coding); an estimate is rounded at once.
	pick, picked := c.estimate(opts, base)
	if !picked {
		if smp, ok := run.sample(); ok {
			cd, _, err := c.decide(smp, step, base, noBlob)
			if err != nil {
				return nil, err
			}
			pick, picked = cd.p, true
		}
	}
	if picked {
		if run.hessian == nil {
			// Normalize the whole matrix once and let its float32
			// weights go, so that they and the latents are never held
			// together.
			run.x, run.w = run.normalize(), nil
		}
		switch p := pick; {
		case !p.Plain:
			chosen, err = run.code(p, true)
		case p.Trellis:
			chosen, err = run.code(p, false)
		default:
			chosen, err = run.plain(p, false)
		}
		if err != nil {
			return nil, err
		}
		// Only the latents are coded from here on.
		chosen.x, run.x = nil, nil
		lv := chunkLevels(colLv, chunk.Chunks(rows))
		hist := levelHistograms(chosen.y, lv, rows, cols, opts.Jobs)
		if tables, tableAux, err = buildTables(&hist); err != nil {
			return nil, err
		}
	} else {
		var r rd
		if chosen, r, err = c.decide(&run, step, base, noBlob); err != nil {
			return nil, err
		}
		tables, tableAux = r.tabs, r.aux
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
	const k = chunk.Rows
	enc.Groups = make([]codec.EncodedGroup, len(ends))
	err = parallel.Each(opts.Jobs, len(ends), func(g int) error {
		r0, r1 := 0, ends[g]
		if g > 0 {
			r0 = ends[g-1]
		}
		b0, b1 := r0/k, chunk.Chunks(r1)
		data, err := neural.EncodeLatents(chosen.y[b0*cols*k:b1*cols*k], colLv, b0, b1, rows, cols, &tables)
		enc.Groups[g] = codec.EncodedGroup{End: uint64(r1) * uint64(cols), Data: data}
		return err
	})
	if err != nil {
		return nil, err
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

// estimate returns the parameters an estimate (codec.EncodeOptions) is
// coded with, base's with rounding, or false if opts asks for none or the
// encoder is forced to the learned transform. Rounding is the cheapest
// coding, and decide keeps the trellis or the learned transform at the
// step where they cost about what rounding does at base's.
func (c *Encoder) estimate(opts *codec.EncodeOptions, base neural.Params) (neural.Params, bool) {
	if !opts.Estimate || c.force == forceLearned {
		return neural.Params{}, false
	}
	base.Plain = true
	return base, true
}

// decide codes run's matrix every way and returns the coding it keeps,
// with its measure: rounding, unless the trellis, or the learned
// transform (unless noBlob), beats it at equal rate. The trellis, which
// minimizes error alone, gains about 1 dB from 3 bits per weight up but
// can lose below 2. The learned transform is judged at equal rate too,
// not by the matrix's own local rate–distortion slope: rate control
// trades bits between matrices at the file's slope, and on stories15M at
// 2 bits per weight keeping it by the local slope cost 0.68 dB of the
// file's SQNR against the same file without it.
func (c *Encoder) decide(run *pass, step float64, base neural.Params, noBlob bool) (*coding, rd, error) {
	rows, cols := run.rows, run.cols
	lv := chunkLevels(run.colLv, chunk.Chunks(rows))
	measured := func(cd *coding, err error) (*coding, rd, error) {
		if err != nil {
			return nil, rd{}, err
		}
		r, err := c.measure(run, cd, lv)
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
	plain, pr, err := measurePlain(base, false)
	if err != nil {
		return nil, rd{}, err
	}
	if !c.roundPlain {
		tp, tr, err := measurePlain(base, true)
		if err != nil {
			return nil, rd{}, err
		}
		// Keep the trellis only if it has less error at equal rate: a
		// tensor-by-tensor improvement, whatever rate the other tensors
		// get.
		if pt, ok := atRateOf(tr, pr); ok {
			if tp, tr, err = measurePlain(pt, true); err != nil {
				return nil, rd{}, err
			}
		}
		if beats(tr, pr) {
			plain, pr = tp, tr
		}
	}
	if noBlob {
		// The caller judged that the decoder's weights would cost the
		// file more than the learned transform can save.
		return plain, pr, nil
	}
	learned, lr, err := measureLearned(base)
	if err != nil {
		return nil, rd{}, err
	}
	if c.force == forceAuto {
		if pl, ok := atRateOf(lr, pr); ok {
			if learned, lr, err = measureLearned(pl); err != nil {
				return nil, rd{}, err
			}
		}
		if beats(lr, pr) {
			return learned, lr, nil
		}
	}
	if c.force == forceLearned {
		return learned, lr, nil
	}
	return plain, pr, nil
}

// chunkLevels returns the level of every chunk of nb chunk rows, in
// coding order, from each column's.
func chunkLevels(colLv []uint8, nb int) []uint8 {
	cols := len(colLv)
	lv := make([]uint8, nb*cols)
	for b := range nb {
		copy(lv[b*cols:], colLv)
	}
	return lv
}

// Sampling. Choosing between rounding, the trellis and the learned
// transform codes a matrix five to seven times; on a large matrix the
// encoder chooses on a deterministic sample instead and codes the whole
// matrix once. The sample is evenly spaced columns, and of them evenly
// spaced runs of rows (rows differ more than columns once columns are
// normalized: an embedding's rows are tokens of every frequency), each
// run a trellis sequence of its own; it is normalized by the whole
// matrix's column scales.
const (
	// sampleWeights is about how many weights the choice is made from:
	// enough that the rate and distortion differences between codings,
	// which move together on the same weights, are measured to well under
	// 0.01 dB.
	sampleWeights = 1 << 17
	// minSampleColumns is the fewest columns a sample takes, so that
	// columns of unusual shape are represented.
	minSampleColumns = 64
	// sampleRunRows is the length of a run of rows: 4 chunks, long enough
	// for the trellis to forget its start.
	sampleRunRows = 4 * chunk.Rows
)

// sample returns the pass over a sample of r's matrix, or false when r is
// coded whole: with LDLQ, whose feedback runs across all columns, and on
// matrices of up to twice sampleWeights.
func (r *pass) sample() (*pass, bool) {
	n := r.rows * r.cols
	if r.hessian != nil || r.scales == nil || n <= 2*sampleWeights || r.c.wholeChoice {
		return nil, false
	}
	s, _ := r.sampleFrom(func(_ []float32, r0, r1 int) ([]float32, error) { return r.w[r0*r.cols : r1*r.cols], nil })
	return s, true
}

// sampleFrom returns the pass over a sample of r's matrix (r.scales set),
// whose rows [r0, r1) read returns (in dst's storage, if it likes). It
// takes every (n/sampleWeights)-th column, but at least
// minSampleColumns, and of them all rows if that is at most twice
// sampleWeights, else about sampleWeights/columns rows in evenly spaced
// runs of sampleRunRows.
func (r *pass) sampleFrom(read func(dst []float32, r0, r1 int) ([]float32, error)) (*pass, error) {
	const k = chunk.Rows
	n := r.rows * r.cols
	colStride := max(1, min(n/sampleWeights, r.cols/minSampleColumns))
	cols := (r.cols + colStride - 1) / colStride
	// Runs of rows [r0, r1), each starting a trellis sequence; chunk rows
	// that start a group of the matrix start one too.
	var runs [][2]int
	if r.rows*cols <= 2*sampleWeights {
		runs = [][2]int{{0, r.rows}}
	} else {
		nr := max(1, sampleWeights/cols/sampleRunRows)
		for i := range nr {
			r0 := i * r.rows / nr / k * k
			runs = append(runs, [2]int{r0, min(r.rows, r0+sampleRunRows)})
		}
	}
	rows := 0
	for _, run := range runs {
		rows += run[1] - run[0]
	}
	s := &pass{
		c: r.c, w: make([]float32, rows*cols), rows: rows, cols: cols,
		colLv: make([]uint8, cols), starts: make([]bool, chunk.Chunks(rows)),
		jobs: r.jobs, interrupt: r.interrupt, scales: make([]uint16, cols),
		auxWeight: float64(rows*cols) / float64(n),
	}
	for j := range cols {
		s.colLv[j], s.scales[j] = r.colLv[j*colStride], r.scales[j*colStride]
	}
	i := 0
	var buf []float32
	for _, run := range runs {
		// A run of all rows is read in slabs.
		for a := run[0]; a < run[1]; a += sampleRunRows {
			b := min(a+sampleRunRows, run[1])
			m, err := read(buf, a, b)
			if err != nil {
				return nil, err
			}
			buf = m
			// Runs start at multiples of k rows and only the matrix's
			// last chunk is ragged, so only the sample's last can be.
			for row := a; row < b; row++ {
				if row%k == 0 {
					s.starts[i/k] = row == run[0] || r.starts[row/k]
				}
				src, dst := m[(row-a)*r.cols:(row-a+1)*r.cols], s.w[i*cols:(i+1)*cols]
				for j := range dst {
					dst[j] = src[j*colStride]
				}
				i++
			}
		}
	}
	return s, nil
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

// latents runs the encoder net on every chunk: y = round(x/Δ_q + E(x, ln Δ_q)),
// in batches of encodeBatch chunks on up to jobs goroutines.
func (c *Encoder) latents(x []float32, lv []uint8, p *neural.Params, jobs int) ([]int32, error) {
	const k = chunk.Rows
	n := len(lv)
	y := make([]int32, n*k)
	batches := (n + encodeBatch - 1) / encodeBatch
	err := parallel.Each(jobs, batches, func(bi int) error {
		c0 := bi * encodeBatch
		bn := min(encodeBatch, n-c0)
		sc := scratchPool.Get().(*scratch)
		defer scratchPool.Put(sc)
		in, out := grow(sc.in, bn*(k+1)), grow(sc.out, bn*k)
		sc.in, sc.out = in, out
		for ci := range bn {
			copy(in[ci*(k+1):], x[(c0+ci)*k:(c0+ci+1)*k])
			in[ci*(k+1)+k] = p.Features[lv[c0+ci]]
		}
		if err := c.c.PackedEncoder().Forward(out, in, lv[c0:], bn, &sc.mlp); err != nil {
			return err
		}
		for ci := range bn {
			s := float64(p.Steps[lv[c0+ci]])
			for i := range k {
				y[(c0+ci)*k+i] = quantize(float64(x[(c0+ci)*k+i])/s + float64(out[ci*k+i]))
			}
		}
		return nil
	})
	return y, err
}

// scratch is one goroutine's buffers for a batch of network evaluations.
type scratch struct {
	mlp           mlp.Scratch
	in, dout, out []float32
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

// centroidOffset returns the offset δ (in 1/256 of a step, at most neural.MaxOffset)
// that minimizes the squared error of the plain reconstruction
// sign(y)·(|y| − δ)·Δ_q over the nonzero latents: the mean amount by which
// |x|/Δ_q falls short of |y|. Unimodal weights are denser toward zero
// within each cell, so the centroid sits below the cell's middle.
func centroidOffset(x []float32, y []int32, lv []uint8, p *neural.Params, scales []float32, rows, cols int, starts []bool) uint8 {
	var o offsetSums
	o.add(x, y, lv, p, scales, rows, cols, starts)
	return o.offset()
}

// offsetSums are the sums centroidOffset divides, which slabs of whole
// groups add in order.
type offsetSums struct{ num, den float64 }

// add adds the nonzero latents of a matrix (or of a slab of whole groups
// of one) to the sums.
func (o *offsetSums) add(x []float32, y []int32, lv []uint8, p *neural.Params, scales []float32, rows, cols int, starts []bool) {
	const k = chunk.Rows
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
			o.num += w * (a - math.Abs(float64(x[ci*k+i]))/s)
			o.den += w
		}
	}
}

// offset is the offset the sums give.
func (o *offsetSums) offset() uint8 {
	if o.den == 0 {
		return 0
	}
	return uint8(math.Max(0, math.Min(neural.MaxOffset, math.RoundToEven(256*o.num/o.den))))
}

// quantizeAll returns the scalar quantizer's latents of the chunk-major
// array x (width chunks per chunk row): round(x/Δ_q), or with p.Trellis
// the Viterbi choice over each column of each group (starts as in
// neural.ChunkSeq), with p's offset.
func quantizeAll(x []float32, lv []uint8, p *neural.Params, width int, starts []bool, jobs int) []int32 {
	const k = chunk.Rows
	if p.Trellis {
		return trellisQuantize(x, lv, p, width, starts, jobs)
	}
	y := make([]int32, len(x))
	parallel.Range(jobs, len(lv), 4096, func(c0, c1 int) error {
		for ci := c0; ci < c1; ci++ {
			s := float64(p.Steps[lv[ci]])
			for i := range k {
				y[ci*k+i] = quantize(float64(x[ci*k+i]) / s)
			}
		}
		return nil
	})
	return y
}

// rd is one way of coding a tensor: its squared error in the weights'
// own units, its bits (latents and tables) and its tables.
type rd struct {
	dist, bits float64
	tabs       [neural.NumLevels]*rans.Table
	aux        []byte
}

// tablePrecision is the precision of nwc's per-tensor rANS tables, as
// neural.BuildTables builds them: 14 bits costs under 0.1 % over the
// entropy with a 32 KiB decoding table.
const tablePrecision = 14

// measure returns the squared error of the real (unpadded) weights of
// coding cd of run's matrix (chunk levels lv), Σ s_j²·(x − x̂)², the bits
// of its latents and tables, and the tables.
func (c *Encoder) measure(run *pass, cd *coding, lv []uint8) (rd, error) {
	var r rd
	hist := levelHistograms(cd.y, lv, run.rows, run.cols, run.jobs)
	var err error
	if r.tabs, r.aux, err = buildTables(&hist); err != nil {
		return r, err
	}
	if r.dist, err = c.distortion(run, cd, lv); err != nil {
		return r, err
	}
	for q, t := range r.tabs {
		if t != nil {
			r.bits += hist[q].Bits(t)
		}
	}
	r.bits += 8 * float64(len(r.aux)) * run.auxWeight
	return r, nil
}

// levelHistograms counts the coded latents of each level: the rows of
// each chunk that exist in the matrix. Parts of whole chunk rows are
// counted on up to jobs goroutines.
func levelHistograms(y []int32, lv []uint8, rows, cols, jobs int) [neural.NumLevels]*rans.Histogram {
	const k = chunk.Rows
	nb := len(lv) / cols
	oneLevel := !slicesAny(lv[:cols])
	per := max(1, (256<<10)/(cols*k))
	parts := (nb + per - 1) / per
	hs := make([][neural.NumLevels]*rans.Histogram, parts)
	parallel.Each(jobs, parts, func(pi int) error {
		b0, b1 := pi*per, min(nb, (pi+1)*per)
		if oneLevel && (b1 < nb || validRows(nb-1, rows) == k) {
			hs[pi][0] = rans.NewHistogram(y[b0*cols*k : b1*cols*k])
			return nil
		}
		var by [neural.NumLevels][]int32
		for ci := b0 * cols; ci < b1*cols; ci++ {
			by[lv[ci]] = append(by[lv[ci]], y[ci*k:ci*k+validRows(ci/cols, rows)]...)
		}
		for q, s := range by {
			if len(s) > 0 {
				hs[pi][q] = rans.NewHistogram(s)
			}
		}
		return nil
	})
	var out [neural.NumLevels]*rans.Histogram
	for q := range out {
		var of []*rans.Histogram
		for _, h := range hs {
			if h[q] != nil {
				of = append(of, h[q])
			}
		}
		if len(of) > 0 {
			out[q] = rans.MergeHistograms(of...)
		}
	}
	return out
}

// buildTables returns the rANS table of every level counted (nil for the
// others) and the serialized neural.AuxTables section: what
// neural.BuildTables gives for the same latents.
func buildTables(hist *[neural.NumLevels]*rans.Histogram) ([neural.NumLevels]*rans.Table, []byte, error) {
	var tabs [neural.NumLevels]*rans.Table
	var aux []byte
	for q, h := range hist {
		if h == nil || h.Total() == 0 {
			continue
		}
		t, err := h.BuildCompact(rans.MinPrecision, tablePrecision)
		if err != nil {
			return tabs, nil, err
		}
		tabs[q] = t
		if aux, err = t.AppendBinary(aux); err != nil {
			return tabs, nil, err
		}
	}
	return tabs, aux, nil
}

// distPart is how many columns (plain codings) or chunks (learned ones)
// one partial sum of the distortion covers: fixed, so that the sum is the
// same on any number of goroutines.
const distPart = 64

// distortion returns Σ s_j²·(x − x̂)² over the real weights of coding cd,
// x̂ being what the decoder reconstructs. The scalar path's values follow
// each column's trellis states, so its parts are columns; the learned
// path's chunks are independent, so its parts are batches of chunks.
func (c *Encoder) distortion(run *pass, cd *coding, lv []uint8) (float64, error) {
	const k = chunk.Rows
	rows, cols := run.rows, run.cols
	nb := len(lv) / cols
	p := &cd.p
	var sums []float64
	if p.Plain {
		off := float32(float32(p.Offset) / 256)
		var offs [trellis.States]float32
		for st := range offs {
			offs[st] = off
			if p.Trellis {
				offs[st] = trellis.Offset(uint8(st), off)
			}
		}
		parts := (cols + distPart - 1) / distPart
		sums = make([]float64, parts)
		parallel.Each(run.jobs, parts, func(pi int) error {
			var sum float64
			for j := pi * distPart; j < min(cols, (pi+1)*distPart); j++ {
				s, sc := p.Steps[lv[j]], float64(cd.scales[j])
				st := uint8(0)
				for b := range nb {
					if b == 0 || run.starts != nil && run.starts[b] {
						st = 0
					}
					ci := b*cols + j
					for i := range validRows(b, rows) {
						v := cd.y[ci*k+i]
						e := (float64(cd.x[ci*k+i]) - float64(trellis.Value(v, s, offs[st]))) * sc
						sum += e * e
						if p.Trellis {
							st = trellis.Next(st, v)
						}
					}
				}
			}
			sums[pi] = sum
			return nil
		})
	} else {
		n := len(lv)
		parts := (n + encodeBatch - 1) / encodeBatch
		sums = make([]float64, parts)
		err := parallel.Each(run.jobs, parts, func(pi int) error {
			c0 := pi * encodeBatch
			bn := min(encodeBatch, n-c0)
			sc := scratchPool.Get().(*scratch)
			defer scratchPool.Put(sc)
			sc.in, sc.dout, sc.out = grow(sc.in, bn*(k+1)), grow(sc.dout, bn*k), grow(sc.out, bn*k)
			seq := neural.NewChunkSeq(cols, run.starts) // unused: no trellis with the net
			if err := c.c.Reconstruct(sc.out, cd.y[c0*k:], lv[c0:], bn, p, seq, c0, sc.in, sc.dout, &sc.mlp); err != nil {
				return err
			}
			var sum float64
			for ci := range bn {
				s := float64(cd.scales[(c0+ci)%cols])
				for i := range validRows((c0+ci)/cols, rows) {
					e := (float64(cd.x[(c0+ci)*k+i]) - float64(sc.out[ci*k+i])) * s
					sum += e * e
				}
			}
			sums[pi] = sum
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	var d float64
	for _, v := range sums {
		d += v
	}
	return d, nil
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
