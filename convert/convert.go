// Package convert turns safetensors checkpoints into .nwc files and back:
// it decides how each tensor is coded (lossless for vectors, small tensors
// and names the user keeps; the chosen codec for the matrices), and it
// controls the rate so a file hits a target number of bits per weight.
package convert

import (
	"context"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"regexp"
	"time"

	"github.com/nwcodec/nwc/calib"
	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/safetensors"
	"github.com/nwcodec/nwc/writer"
)

// Options configure ToNWC. The zero value converts every tensor with the
// lossless codec.
type Options struct {
	// Codec is the codec of the matrices; "" means codec.Lossless. With
	// raw or lossless every tensor uses it; with a lossy codec, tensors of
	// rank < 2, tensors under MinElements and those matching Keep are
	// coded losslessly.
	Codec string
	// Bits is the target bits per weight of the whole file, counted as
	// BitsPerWeight does; 0 keeps the codec's default step. It applies to
	// codecs with a continuous rate (codec.Stepper); rtn picks the integer
	// width nearest to it.
	Bits float64
	// TensorBits overrides Bits for the matrices whose name matches; the
	// first match wins.
	TensorBits []TensorBits
	// Keep lists name patterns kept lossless; nil means DefaultKeep.
	Keep []*regexp.Regexp
	// MinElements: matrices with fewer elements stay lossless; 0 means
	// DefaultMinElements.
	MinElements uint64
	// Transposed lists name patterns of matrices stored [in, out].
	Transposed []*regexp.Regexp
	// Encode holds the base options passed to every codec.
	Encode codec.EncodeOptions
	// Guidance, if set, adds Hessian-based importance levels, LDLQ error
	// compensation and bit allocation.
	Guidance *Guidance
	// Writer configures the container. With its zero AlignLog2 and
	// Packed unset, files of any codec but raw are packed (alignment 1):
	// only raw tensors can be mapped in place, and padding every section
	// to 64 bytes costs a small model several hundredths of a bit per
	// weight. Set AlignLog2 to force an alignment.
	Writer writer.Options
	// CheckpointDir, if set, is the directory holding the checkpoint's
	// companion files (CompanionFiles: config.json, tokenizer files),
	// which are recorded in the file's metadata so that it is usable
	// alone.
	CheckpointDir string
	// SourceName is the base name recorded for a single-file source;
	// "" means "model.safetensors".
	SourceName string
	// Jobs is the number of tensors encoded at once; 0 means
	// runtime.GOMAXPROCS(0). The file is byte for byte the same for any
	// value. Memory grows with it: each worker holds one tensor and its
	// encoder's working copies, and up to 2·Jobs finished encodings wait
	// to be written in order.
	Jobs int
	// Rate selects how Bits is reached; the zero value is RateAuto.
	Rate RateMode
	// Progress, if set, is called after each tensor of each pass, from
	// one goroutine at a time.
	Progress func(Progress)
}

// TensorBits is a per-tensor rate override.
type TensorBits struct {
	Pattern *regexp.Regexp
	Bits    float64
}

// DefaultKeep keeps normalization weights and biases lossless, as
// llama.cpp does.
var DefaultKeep = []*regexp.Regexp{regexp.MustCompile(`(?i)(norm|bias)`)}

// MaxBlobBitsPerWeight is the most a codec's shared blob may cost, spread
// over the lossy matrices, before conversion codes without it.
const MaxBlobBitsPerWeight = 0.01

// DefaultMinElements is the size under which a matrix stays lossless: its
// per-column scales and tables would cost more than they save.
const DefaultMinElements = 1024

// Stats summarizes a conversion.
type Stats struct {
	Tensors       int
	Lossy         int     // tensors coded with the lossy codec
	InBytes       int64   // tensor data bytes read
	OutBytes      int64   // size of the .nwc file
	BitsPerWeight float64 // as BitsPerWeight computes it
	// Passes counts full encodes of the checkpoint: the rate search's dry
	// runs and the final pass. The rate model's sampling is not counted.
	Passes int
	// ModelBits is the rate model's prediction of BitsPerWeight before
	// the final pass (0 when rate control did not use the model), and
	// SampledWeights the weights its samples encoded, summed over steps.
	ModelBits      float64
	SampledWeights uint64
	// StepModelBits is the rate model's prediction of BitsPerWeight at
	// the steps the final pass used, which feedback may have moved from
	// the solved one: against BitsPerWeight, the model's own error (0
	// without the model).
	StepModelBits float64
	// RateTime is the wall time rate control took (the rate model's
	// sampling or the rate search's passes, and sequential guidance), and
	// EncodeTime that of the final pass, which writes the file.
	RateTime, EncodeTime time.Duration
}

// ToNWC converts the checkpoint src to a .nwc file at out. The file appears
// under its name only when complete: an error or the cancellation of ctx,
// which is checked between tensors and once more just before the
// rename, leaves nothing behind.
//
// Sequential guidance and layer Hessians keep what they derive for each
// matrix in a temporary file next to out (see spill), removed before ToNWC
// returns.
func ToNWC(ctx context.Context, src safetensors.Source, out string, opts *Options) (*Stats, error) {
	return toNWC(ctx, src, out, opts, true)
}

// toNWC is ToNWC, holding guidance's targets and Hessians in memory
// instead of a spill file unless spill is set.
func toNWC(ctx context.Context, src safetensors.Source, out string, opts *Options, spill bool) (*Stats, error) {
	c, err := newConversion(ctx, src, opts)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	g := c.o.Guidance
	if spill && g != nil && (g.Sequential || g.LayerHessians) {
		if c.spill, err = newSpill(ctx, out); err != nil {
			return nil, err
		}
		defer c.spill.remove()
	}
	if g != nil && g.LayerHessians {
		if err := c.streamHessians(ctx, g.Calib); err != nil {
			return nil, err
		}
	}
	if err := c.controlRate(ctx); err != nil {
		return nil, err
	}
	if g != nil && g.Sequential {
		// The targets and Hessians depend on the steps, and change
		// the file's size a little: control the rate again.
		if err := c.sequential(ctx, g.Calib); err != nil {
			return nil, err
		}
		if err := c.controlRate(ctx); err != nil {
			return nil, err
		}
	}
	f, err := writer.CreateContext(ctx, out, &c.o.Writer)
	if err != nil {
		return nil, err
	}
	defer f.Abort()
	rateTime := time.Since(start)
	start = time.Now()
	st, err := c.write(ctx, f.Writer, PhaseEncode, 1, c.feedback())
	if err != nil {
		return nil, err
	}
	// The spill goes before the file appears, so that a failure to
	// remove it leaves no file either.
	if err := c.spill.remove(); err != nil {
		return nil, fmt.Errorf("convert: spill file: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	st.OutBytes = f.Size()
	st.BitsPerWeight = c.bitsPerWeight(st.OutBytes)
	st.Passes = c.passes + 1
	st.ModelBits = c.modelBits
	st.SampledWeights = c.sampled
	if c.rate != nil {
		st.StepModelBits = c.rate.atSteps()
	}
	st.RateTime, st.EncodeTime = rateTime, time.Since(start)
	return st, nil
}

// conversion is the plan for one checkpoint.
type conversion struct {
	src    safetensors.Source
	tokens tokenSteps
	o      Options
	items  []*item
	passes int
	// modelBits and sampled are the rate model's prediction and cost
	// (Stats).
	modelBits float64
	sampled   uint64
	// rate is the rate model's plan for the final pass, nil when rate
	// control did not use it.
	rate *ratePlan
	// keepHeader: the source headers are stored when every tensor keeps
	// its exact bytes, so decoding reproduces the file.
	keepHeader bool
	// planMeta is added to the source's metadata by a planned conversion
	// (plan.go).
	planMeta map[string]string
	// meta is the file's metadata (checkpointMetadata).
	meta map[string]string
	// spill, when set, holds the targets and Hessians guidance derives
	// (spill.go).
	spill *spill
}

// item is one tensor's plan.
type item struct {
	info   safetensors.TensorInfo
	shape  []uint64
	numel  uint64
	codec  string
	bits   float64 // target bits per weight, for lossy codecs with a step
	fixed  bool    // bits come from a --tensor-bits override
	factor float64 // step relative to the file's step (bit allocation)
	step   float64 // current step
	target float64 // byte budget of this pass
	stored uint64  // unaligned bytes of its sections in the last pass
	// data and hessian, when set, replace the tensor's source bytes and
	// its Hessian (sequential guidance); dataAt and hessianAt do so from
	// the conversion's spill.
	data      []byte
	hessian   *calib.Hessian
	dataAt    *span
	hessianAt *spilledHessian
	// factors caches the column scale factors of ColumnSteps, which
	// depend on the data and the Hessian only.
	factors []float32
	// model predicts its stored bytes from row samples (rate model).
	model *rateModel
	// plan is its entry in a plan being converted (part.go).
	plan *PlanTensor
	// colScales are the RMS of the matrix's columns as fp16 values, which
	// the rate model's first pass over the whole tensor measures and its
	// later passes, which read only the sampled rows, reuse.
	colScales []float32
}

// readTensor returns the bytes to code for it.
func (c *conversion) readTensor(it *item) ([]byte, error) {
	switch {
	case it.data != nil:
		return it.data, nil
	case it.dataAt != nil:
		return c.spill.get(*it.dataAt)
	}
	return c.src.ReadTensor(it.info.Name)
}

// hessianOf returns the Hessian guiding it, whose view is transposed or
// not, or nil when it has none.
func (c *conversion) hessianOf(it *item, transposed bool) (*calib.Hessian, error) {
	switch {
	case it.hessian != nil:
		return it.hessian, nil
	case it.hessianAt != nil:
		return c.spill.hessian(it.hessianAt)
	}
	return c.o.Guidance.hessianFor(it.info.Name, it.numel/it.shape[0], transposed), nil
}

// hasOwnHessian reports whether guidance gave it a Hessian of its own,
// replacing any from Guidance.Hessians.
func hasOwnHessian(it *item) bool { return it.hessian != nil || it.hessianAt != nil }

// spillGuidance moves the targets of its and the Hessian h they share to
// the spill, when the conversion has one.
func (c *conversion) spillGuidance(its []*item, h *calib.Hessian) error {
	if c.spill == nil {
		return nil
	}
	var hr *spilledHessian
	for _, it := range its {
		if it.data != nil {
			at, err := c.spill.put(it.data)
			if err != nil {
				return err
			}
			it.data, it.dataAt = nil, &at
		}
		if h != nil && it.hessian == h {
			if hr == nil {
				var err error
				if hr, err = c.spill.putHessian(h); err != nil {
					return err
				}
			}
			it.hessian, it.hessianAt = nil, hr
		}
	}
	return nil
}

func newConversion(ctx context.Context, src safetensors.Source, opts *Options) (*conversion, error) {
	c := &conversion{src: src}
	if opts != nil {
		c.o = *opts
	}
	if c.o.Encode.Interrupt == nil {
		// One matrix can take minutes to code: let the encoders see
		// the cancellation between column blocks.
		c.o.Encode.Interrupt = ctx.Err
	}
	if c.o.Codec == "" {
		c.o.Codec = codec.Lossless
	}
	if c.o.Keep == nil {
		c.o.Keep = DefaultKeep
	}
	if c.o.MinElements == 0 {
		c.o.MinElements = DefaultMinElements
	}
	if c.o.Writer.AlignLog2 == 0 && c.o.Codec != codec.Raw {
		c.o.Writer.Packed = true
	}
	cd, err := codec.LookupEncoder(c.o.Codec)
	if err != nil {
		return nil, err
	}
	stepper, _ := cd.(codec.Stepper)
	if c.o.Bits != 0 && (c.o.Bits < 1 || c.o.Bits > 16) {
		return nil, fmt.Errorf("convert: %w: --bits %g outside [1, 16]", codec.ErrOptions, c.o.Bits)
	}
	if s := c.o.Encode.Step; s < 0 || math.IsNaN(s) || math.IsInf(s, 0) {
		return nil, fmt.Errorf("convert: %w: step %v is not positive and finite", codec.ErrOptions, s)
	}
	c.keepHeader = !codec.Lossy(c.o.Codec)
	if c.meta, err = checkpointMetadata(src, c.o.CheckpointDir); err != nil {
		return nil, err
	}
	for _, ti := range src.Tensors() {
		it := &item{info: ti, shape: make([]uint64, len(ti.Shape)), numel: 1, factor: 1}
		for i, d := range ti.Shape {
			it.shape[i] = uint64(d)
			it.numel *= uint64(d)
		}
		it.codec = c.codecFor(it)
		if codec.Lossy(it.codec) && stepper != nil {
			it.step = stepper.DefaultStep()
			if c.o.Encode.Step > 0 {
				it.step = c.o.Encode.Step
			}
			it.bits = c.o.Bits
			for _, tb := range c.o.TensorBits {
				if tb.Pattern.MatchString(ti.Name) {
					it.bits, it.fixed = tb.Bits, true
					break
				}
			}
		}
		c.items = append(c.items, it)
	}
	// A shared blob (nwc's decoder) must pay for itself: the learned
	// transform gains at most ~0.1 dB over the scalar path at equal rate,
	// about 0.015 bits per weight, so a blob costing more than
	// MaxBlobBitsPerWeight is not stored and nwc codes every tensor on its
	// scalar path. Referencing a built-in blob (BlobRef) costs nothing.
	if bs, ok := cd.(codec.BlobSizer); ok && !c.o.Encode.BlobRef {
		var elems uint64
		for _, it := range c.items {
			if codec.Lossy(it.codec) {
				elems += it.numel
			}
		}
		if elems > 0 && float64(bs.BlobSize())*8/float64(elems) > MaxBlobBitsPerWeight {
			c.o.Encode.NoBlob = true
		}
	}
	if g := c.o.Guidance; g != nil && (g.Probe != nil || g.Sequential || g.LayerHessians) && (g.Calib == nil || (g.Calib.Model == nil && g.Calib.Lazy == nil)) {
		return nil, fmt.Errorf("convert: %w: measured allocation, sequential guidance and layer Hessians need a calibration model", codec.ErrOptions)
	}
	if err := c.prepareTokenSteps(ctx); err != nil {
		return nil, err
	}
	if g := c.o.Guidance; g != nil && g.Allocate {
		var sens []Sensitivity
		var err error
		maxShift := MaxBitsShift
		if g.Probe != nil {
			sens, err = c.measuredSensitivities(ctx, g.Calib, g.Probe)
			maxShift = MaxMeasuredBitsShift
		} else {
			sens, err = c.sensitivities()
		}
		if err != nil {
			return nil, err
		}
		factors := StepFactors(sens, maxShift)
		for _, it := range c.items {
			if f, ok := factors[it.info.Name]; ok {
				it.factor = f
				it.step *= f
			}
		}
	}
	return c, nil
}

// codecFor decides how one tensor is coded.
func (c *conversion) codecFor(it *item) string {
	if !codec.Lossy(c.o.Codec) {
		return c.o.Codec
	}
	if len(it.shape) < 2 || it.numel < c.o.MinElements || !it.info.DType.IsFloat() {
		return codec.Lossless
	}
	for _, re := range c.o.Keep {
		if re.MatchString(it.info.Name) {
			return codec.Lossless
		}
	}
	return c.o.Codec
}

// options returns the encode options of one tensor.
func (c *conversion) options(it *item, t *codec.Tensor) (*codec.EncodeOptions, error) {
	o := c.o.Encode
	if !codec.Lossy(it.codec) {
		return &o, nil
	}
	if o.Jobs == 0 {
		// --jobs bounds the whole conversion: a big tensor then uses the
		// workers that small ones leave idle, and --jobs 1 is one thread.
		o.Jobs = c.jobs()
	}
	o.Step = it.step
	if it.codec == "rtn" && o.Bits == 0 && c.o.Bits != 0 {
		o.Bits = rtnBits(c.o.Bits, o.Group)
	}
	o.Transposed = c.transposed(it)
	if c.o.Guidance != nil && len(it.shape) >= 2 {
		h, err := c.hessianOf(it, o.Transposed)
		if err != nil {
			return nil, err
		}
		if err := c.o.Guidance.apply(it, h, &o, t); err != nil {
			return nil, err
		}
	}
	if c.vocabMatrix(it, o.Transposed) {
		if err := c.applyTokenSteps(it, &o, t); err != nil {
			return nil, err
		}
	}
	return &o, nil
}

func (c *conversion) transposed(it *item) bool {
	for _, re := range c.o.Transposed {
		if re.MatchString(it.info.Name) {
			return true
		}
	}
	return false
}

// rtnBits picks rtn's integer width nearest to a target rate, counting its
// fp16 scale and N-bit zero per group.
func rtnBits(target float64, group int) int {
	if group <= 0 {
		group = 128
	}
	best, bestErr := 2, 1e9
	for n := 2; n <= 8; n++ {
		bpw := float64(n) + float64(16+n)/float64(group)
		if e := abs(bpw - target); e < bestErr {
			best, bestErr = n, e
		}
	}
	return best
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// write encodes every tensor into w through the pipeline; plan, if set,
// fixes each tensor's step just before it is handed to a worker.
func (c *conversion) write(ctx context.Context, w *writer.Writer, phase Phase, pass int, plan func(k int) error) (*Stats, error) {
	if err := c.begin(w); err != nil {
		return nil, err
	}
	st := &Stats{}
	type encoded struct {
		enc   *codec.Encoded
		bytes int
	}
	pr := c.progress(phase, pass, c.items)
	err := runOrdered(ctx, len(c.items), c.jobs(), feedbackLag, c.cost, c.budget(), plan,
		func(k int) (encoded, error) {
			it := c.items[k]
			data, err := c.readTensor(it)
			if err != nil {
				return encoded{}, err
			}
			n := len(data)
			t := &codec.Tensor{Name: it.info.Name, DType: it.info.DType, Shape: it.shape, Data: data}
			data = nil // the encoder may release t.Data (see encode)
			enc, err := c.encode(it, t)
			if err != nil {
				return encoded{}, fmt.Errorf("convert: tensor %q: %w", it.info.Name, err)
			}
			return encoded{enc, n}, nil
		},
		func(k int, e encoded) error {
			it := c.items[k]
			if err := w.WriteEncoded(it.info.Name, it.info.DType, it.shape, it.codec, e.enc); err != nil {
				return err
			}
			st.Tensors++
			if codec.Lossy(it.codec) {
				st.Lossy++
			}
			st.InBytes += int64(e.bytes)
			pr(k)
			return nil
		})
	if err != nil {
		return nil, err
	}
	return st, nil
}

// progress returns the function that reports the k-th of its done, in
// order.
func (c *conversion) progress(phase Phase, pass int, its []*item) func(k int) {
	if c.o.Progress == nil {
		return func(int) {}
	}
	p := Progress{Phase: phase, Pass: pass, TotalTensors: len(its)}
	for _, it := range its {
		p.TotalWeights += it.numel
	}
	return func(k int) {
		p.Tensors++
		p.Weights += its[k].numel
		p.Tensor = its[k].info.Name
		c.o.Progress(p)
	}
}

// encode encodes one tensor, searching its step for its byte budget when
// rate control has set one.
func (c *conversion) encode(it *item, t *codec.Tensor) (*codec.Encoded, error) {
	cd, err := codec.LookupEncoder(it.codec)
	if err != nil {
		return nil, err
	}
	o, err := c.options(it, t)
	if err != nil {
		return nil, err
	}
	var enc *codec.Encoded
	switch {
	case it.target <= 0 || it.step == 0:
		// One encode of a tensor read for it alone: the encoder may drop
		// the source bytes once it has loaded them, which for a BF16
		// tensor is a quarter of what it holds at its peak.
		o.ReleaseInput = true
		enc, err = cd.Encode(t, o)
	case it.plan != nil:
		enc, err = encodePlanned(cd, t, o, it)
	case c.rate != nil:
		enc, err = c.encodeBudget(cd, t, o, it)
	default:
		enc, err = searchStep(cd, t, o, it)
	}
	if err != nil {
		return nil, err
	}
	it.stored = storedBytes(enc)
	return enc, nil
}

// storedBytes is what a tensor's own sections take in the file, padding
// aside.
func storedBytes(e *codec.Encoded) uint64 {
	var n uint64
	for _, g := range e.Groups {
		n += uint64(len(g.Data))
	}
	for _, a := range e.Aux {
		n += uint64(len(a.Data))
	}
	return n
}

func (c *conversion) addSources(w *writer.Writer) error {
	if c.meta != nil {
		if err := w.SetMetadata(c.meta); err != nil {
			return err
		}
	}
	if !c.keepHeader {
		return nil
	}
	switch s := c.src.(type) {
	case *safetensors.ReadCloser:
		name := c.o.SourceName
		if name == "" {
			name = "model.safetensors"
		}
		return w.AddSource(filepath.Base(name), s.RawHeader())
	case *safetensors.Sharded:
		for _, name := range s.Shards() {
			sf, ok := s.Shard(name)
			if !ok {
				return fmt.Errorf("convert: shard %q vanished", name)
			}
			if err := w.AddSource(name, sf.RawHeader()); err != nil {
				return err
			}
		}
	}
	return nil
}

// dryRun encodes everything into a writer that discards the bytes, to
// learn the exact file size.
func (c *conversion) dryRun(ctx context.Context) (int64, error) {
	w, err := writer.New(io.Discard, &c.o.Writer)
	if err != nil {
		return 0, err
	}
	if _, err := c.write(ctx, w, PhaseRateSearch, c.passes+1, nil); err != nil {
		return 0, err
	}
	if err := w.Close(); err != nil {
		return 0, err
	}
	return w.Size(), nil
}

// cost is what runOrdered charges tensor k of a whole pass: its elements,
// which bound what reading, loading and encoding it hold in memory.
func (c *conversion) cost(k int) int64 { return int64(c.items[k].numel) }

// budget is the elements the tensors in flight may hold at once: those of
// the largest tensor, so the largest one runs alone and the rest pack up
// to its size, and peak memory follows the largest tensor, not the number
// of workers.
func (c *conversion) budget() int64 {
	var b int64
	for _, it := range c.items {
		b = max(b, int64(it.numel))
	}
	return b
}
