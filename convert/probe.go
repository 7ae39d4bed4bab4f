package convert

import (
	"context"
	"fmt"

	"github.com/nwcodec/nwc/calib"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/llama"
)

// A Calibration is the model a checkpoint holds, loaded for running or
// read a layer at a time, and calibration text: what measured bit
// allocation (Probe) and sequential guidance run to see how compression
// moves the model's predictions.
type Calibration struct {
	// Model holds the original weights; when nil, Lazy reads them from
	// the checkpoint a layer at a time, so memory holds one layer.
	Model *llama.Model
	Lazy  *llama.Lazy
	Docs  [][]int // calibration documents (llama.LoadDocs)
	// Window is the evaluation window; 0 selects the model's context
	// length.
	Window int
}

func (cal *Calibration) window() int {
	if cal.Window == 0 {
		return cal.model().Config().SeqLen
	}
	return cal.Window
}

// calibModel is what probing and sequential guidance read of the
// original model, in llama2.c names and layouts: a layer at a time.
type calibModel interface {
	Config() llama.Config
	Block(l int) (llama.Block, error)
	Tensor(name string) ([]float32, error)
	Classifier() ([]float32, error)
	ModelName(ckpt string) (string, bool)
	ModelLayout(name string, data []float32) []float32
	HessianKey(name string) (string, bool)
}

func (cal *Calibration) model() calibModel {
	if cal.Model != nil {
		return heldModel{cal.Model}
	}
	return cal.Lazy
}

// heldModel is a calibModel over a model in memory; the blocks and
// tensors it returns are the model's own storage, which callers only
// read.
type heldModel struct{ *llama.Model }

func (h heldModel) Block(l int) (llama.Block, error) {
	if l < 0 || l >= h.Config().NLayers {
		return llama.Block{}, fmt.Errorf("%w: layer %d", llama.ErrNotFound, l)
	}
	return h.Model.Block(l), nil
}

func (h heldModel) Tensor(name string) ([]float32, error) {
	d, _, err := h.Model.Tensor(name)
	return d, err
}

func (h heldModel) Classifier() ([]float32, error) { return h.Model.Classifier(), nil }

// A Probe configures measured bit allocation, the alternative to the
// Hessian proxy. Each lossy matrix of layer l in turn is coded at Step and
// put into that layer alone, which runs on the original model's residual
// stream entering it; the matrix's sensitivity is the squared error this
// causes in the stream leaving the layer, relative to that stream's
// energy (the model normalizes the stream before every use, so a
// perturbation matters in proportion to the stream's size). One more
// stream, through layers with every matrix coded at Step, ends in the KL
// divergence of its next-token distributions from the original's: it
// turns the relative errors into nats (the divergence over the sum of
// the relative errors). The classifier is probed by its own KL divergence
// at the end of the original stream. The whole costs about as much as
// nine forward passes of the model, whatever its number of matrices: the
// layer is run once per matrix it holds and twice more.
//
// The divergence, not the change in mean nll, is what is measured because
// the latter is a small difference of two large, noisy numbers with a
// first-order term that can have either sign.
type Probe struct {
	// MaxTokens bounds the text run (windows, up to this many tokens); 0
	// selects DefaultProbeTokens.
	MaxTokens int
	// Step is the normalized step matrices are probed at; 0 selects
	// DefaultProbeStep.
	Step float64
	// Local selects the layer-local probe described above even when the
	// calibration model is held in memory. Without it such a model is
	// probed by a whole-model KL pass per matrix (better on stories15M,
	// see wholeModelSensitivities, but its cost grows with the number of
	// matrices times the model's size); a lazy model is always probed
	// locally.
	Local bool
}

// DefaultProbeTokens is how much text the probe runs unless configured.
const DefaultProbeTokens = 2048

// DefaultProbeStep is the probe's step unless configured: about 3 bits
// per weight, where every matrix moves the predictions measurably. With
// whole-model KL probes (one per matrix), judged by the final file's
// divergence from the original (nwc eval kl) with nwc, column steps and
// LDLQ on stories260K, 0.5 was best or tied: 0.35, 0.7 and 1 were worse at
// 4 bits per weight, and 0.25, better at 4, was worse at 3 and 5.
const DefaultProbeStep = 0.5

// probeLogitBytes bounds the original model's logits that the
// whole-model probe keeps, so that each matrix's probe runs only the
// model with that matrix coded: at most 2048 probe tokens of a 32 k
// vocabulary take 250 MiB, and such probes are for models held in memory.
const probeLogitBytes = 512 << 20

// minDivergence keeps matrices whose probe did not move the predictions
// in the allocation, at a small sensitivity.
const minDivergence = 1e-5

// wholeModelSensitivities measures each lossy matrix's sensitivity by a
// whole-model KL pass with that matrix alone coded at the probe step: one
// forward pass of both models per matrix. It is what a model held in
// memory gets (Probe.Local unset): on stories15M at 4 bits per weight,
// calibrated on tinystories-dev.txt and judged on 8 k tokens of stories
// sampled from the model, it gave a held-out nll of 1.2419 nats/token
// against 1.2601 with the layer-local probe (the original: 1.1935).
func (c *conversion) wholeModelSensitivities(ctx context.Context, cal *Calibration, p *Probe) ([]Sensitivity, error) {
	window := cal.window()
	step := p.Step
	if step == 0 {
		step = DefaultProbeStep
	}
	maxTokens := p.MaxTokens
	if maxTokens == 0 {
		maxTokens = DefaultProbeTokens
	}
	docs := cal.Docs
	for i, n := 0, 0; i < len(docs); i++ {
		if n += len(docs[i]); n >= maxTokens {
			docs = docs[:i+1]
			break
		}
	}
	ref, err := llama.NewKLReference(cal.Model.Clone(), docs, window, probeLogitBytes)
	if err != nil {
		return nil, err
	}
	var probed []*item
	for _, it := range c.items {
		if _, ok := cal.Model.ModelName(it.info.Name); ok && codecLossyWithStep(it) {
			probed = append(probed, it)
		}
	}
	report := c.probeProgress(probed)
	var out []Sensitivity
	for _, it := range probed {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name, _ := cal.Model.ModelName(it.info.Name)
		orig, _, err := cal.Model.Tensor(name)
		if err != nil {
			return nil, err
		}
		saved := append([]float32(nil), orig...)
		coded, err := c.probeRoundTrip(it, step)
		if err != nil {
			return nil, err
		}
		if err := cal.Model.SetCheckpointWeight(it.info.Name, coded); err != nil {
			return nil, err
		}
		kl, err := ref.EvalKL(cal.Model)
		if rerr := cal.Model.SetWeight(name, saved); err == nil {
			err = rerr
		}
		if err != nil {
			return nil, err
		}
		d := max(kl.Mean(), minDivergence)
		out = append(out, Sensitivity{Name: it.info.Name, Elements: it.numel, Value: d / float64(it.numel)})
		report(it)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("convert: the probe model has none of the checkpoint's matrices")
	}
	return out, nil
}

// measuredSensitivities returns, for every lossy matrix the model has, its
// probed divergence (see Probe) in nats per scored token over its number
// of elements: at one normalized step every matrix sees about the same
// normalized distortion, so this is the per-weight sensitivity StepFactors
// wants.
func (c *conversion) measuredSensitivities(ctx context.Context, cal *Calibration, p *Probe) ([]Sensitivity, error) {
	if !p.Local && cal.Model != nil {
		return c.wholeModelSensitivities(ctx, cal, p)
	}
	step := p.Step
	if step == 0 {
		step = DefaultProbeStep
	}
	maxTokens := p.MaxTokens
	if maxTokens == 0 {
		maxTokens = DefaultProbeTokens
	}
	m := cal.model()
	cfg := m.Config()
	ws := llama.Windows(cal.Docs, cal.window(), maxTokens)
	if len(ws) == 0 {
		return nil, fmt.Errorf("convert: %w: no calibration tokens to probe with", codec.ErrOptions)
	}
	byName := map[string]*item{}
	for _, it := range c.items {
		if !codecLossyWithStep(it) {
			continue
		}
		if name, ok := m.ModelName(it.info.Name); ok {
			byName[name] = it
		}
	}
	if len(byName) == 0 {
		return nil, fmt.Errorf("convert: the probe model has none of the checkpoint's matrices")
	}
	var probedItems []*item
	for _, it := range c.items {
		if name, ok := m.ModelName(it.info.Name); ok && byName[name] == it {
			probedItems = append(probedItems, it)
		}
	}
	report := c.probeProgress(probedItems)
	run, err := llama.NewBlockRunner(cfg)
	if err != nil {
		return nil, err
	}
	dim, vocab := cfg.Dim, cfg.VocabSize
	// rel holds each matrix's relative stream error; kl the divergences
	// of classifier probes.
	rel, kl := map[string]float64{}, map[string]float64{}
	emb, err := m.Tensor(llama.NameEmbedding)
	if err != nil {
		return nil, err
	}
	embQ := emb
	allWindows := llama.Windows(cal.Docs, cal.window(), 0)
	if it := byName[llama.NameEmbedding]; it != nil && cfg.TiedEmbeddings && !hasOwnHessian(it) && !c.vocabMatrix(it, false) && c.o.Guidance.hessianFor(it.info.Name, it.numel/it.shape[0], false) == nil {
		// The tied embedding is also the classifier: it is guided by the
		// classifier's input, which only a whole pass can give.
		if it.hessian, err = classifierHessian(ctx, m, run, allWindows, emb); err != nil {
			return nil, err
		}
	}
	if it := byName[llama.NameEmbedding]; it != nil {
		if embQ, err = c.probeCoded(m, it, llama.NameEmbedding, step); err != nil {
			return nil, err
		}
		report(it)
	}
	xs, xq := make([][]float32, len(ws)), make([][]float32, len(ws))
	var embErr, embEnergy float64
	for i, w := range ws {
		xs[i], xq[i] = make([]float32, len(w)*dim), make([]float32, len(w)*dim)
		for r, t := range w {
			if t < 0 || t >= vocab {
				return nil, fmt.Errorf("convert: %w: token %d, vocabulary %d", llama.ErrToken, t, vocab)
			}
			copy(xs[i][r*dim:(r+1)*dim], emb[t*dim:(t+1)*dim])
			copy(xq[i][r*dim:(r+1)*dim], embQ[t*dim:(t+1)*dim])
		}
		embErr += sqDiff(xq[i], xs[i])
		embEnergy += sqDiff(xs[i], nil)
	}
	if byName[llama.NameEmbedding] != nil && embEnergy > 0 {
		rel[llama.NameEmbedding] = embErr / embEnergy
	}
	ys := make([][]float32, len(ws))
	xh, err := embed(allWindows, emb, cfg)
	if err != nil {
		return nil, err
	}
	y := make([]float32, 0)
	for l := range cfg.NLayers {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		blk, err := m.Block(l)
		if err != nil {
			return nil, err
		}
		// The layer's input Hessians give the probed matrices the column
		// steps they will be coded with, as they would have from a
		// calibration file.
		keys := []string{llama.LayerName(l, "attention.wq"), llama.LayerName(l, "attention.wo"), llama.LayerName(l, "feed_forward.w1"), llama.LayerName(l, "feed_forward.w2")}
		// They come from the whole calibration text, like the Hessians
		// of a calibration file; the probes use the first maxTokens.
		in := newCapture(keys, 1)
		hs := map[string]*llama.Moments{}
		for i := range xh {
			if err := run.Run(l, &blk, xh[i], in); err != nil {
				return nil, err
			}
			for _, k := range keys {
				if hs[k] == nil {
					hs[k] = newSelfMoments(in.cols[k])
				}
				hs[k].AddSelf(in.x[k][0])
			}
		}
		// The matrices that read one input (gate and up, query, key and
		// value) share its mean Hessian, which takes over the sums.
		means := map[string]*calib.Hessian{}
		for k, mo := range hs {
			means[k] = meanHessian(mo)
		}
		var energy float64
		for i, x := range xs {
			ys[i] = append(ys[i][:0], x...)
			if err := run.Run(l, &blk, ys[i], nil); err != nil {
				return nil, err
			}
			energy += sqDiff(ys[i], nil)
		}
		probed := blk
		for _, suffix := range llama.BlockSuffixes() {
			name := llama.LayerName(l, suffix)
			it := byName[name]
			if it == nil {
				continue
			}
			// The column factors this leaves in it.factors are kept for
			// the rate control before sequential guidance.
			key, ok := m.HessianKey(name)
			own := !hasOwnHessian(it) && ok && means[key] != nil
			if own {
				it.hessian = means[key]
			}
			coded, err := c.probeCoded(m, it, name, step)
			if own {
				it.hessian = nil
			}
			if err != nil {
				return nil, err
			}
			one := blk
			*one.Field(suffix), *probed.Field(suffix) = coded, coded
			var e float64
			for i, x := range xs {
				y = append(y[:0], x...)
				if err := run.Run(l, &one, y, nil); err != nil {
					return nil, err
				}
				e += sqDiff(y, ys[i])
			}
			if energy > 0 {
				rel[name] = e / energy
			}
			report(it)
		}
		for i := range xq {
			if err := run.Run(l, &probed, xq[i], nil); err != nil {
				return nil, err
			}
		}
		xs, ys = ys, xs
	}
	// The classifier: the all-probed stream's divergence, and each probed
	// classifier's on the original stream.
	norm, err := m.Tensor(llama.NameNorm)
	if err != nil {
		return nil, err
	}
	cls := emb
	if !cfg.TiedEmbeddings {
		if cls, err = m.Classifier(); err != nil {
			return nil, err
		}
	}
	clsName := llama.NameOutput
	if cfg.TiedEmbeddings {
		clsName = llama.NameEmbedding
	}
	var clsQ []float32
	if it := byName[clsName]; it != nil {
		if clsName == llama.NameEmbedding {
			clsQ = embQ
		} else if clsQ, err = c.probeCoded(m, it, clsName, step); err != nil {
			return nil, err
		} else {
			report(it)
		}
	}
	var klAll, klCls float64
	var scored int
	var ref []float32
	for i, x := range xs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		ref = append(ref[:0], run.Logits(norm, cls, append(y[:0], x...))...)
		klAll += llama.KLLogits(ref, run.Logits(norm, cls, xq[i]), vocab)
		if clsQ != nil {
			klCls += llama.KLLogits(ref, run.Logits(norm, clsQ, append(y[:0], x...)), vocab)
		}
		scored += len(ws[i]) - 1
	}
	if scored == 0 {
		return nil, fmt.Errorf("convert: %w: the probe text has no scored token", codec.ErrOptions)
	}
	klAll /= float64(scored)
	klCls /= float64(scored)
	var relSum float64
	for _, r := range rel {
		relSum += r
	}
	nats := 1.0
	if relSum > 0 && klAll > 0 {
		nats = klAll / relSum
	}
	if clsQ != nil {
		kl[clsName] = klCls
	}
	var out []Sensitivity
	for _, it := range c.items {
		if !codecLossyWithStep(it) {
			continue
		}
		name, ok := m.ModelName(it.info.Name)
		if !ok {
			continue
		}
		d := max(rel[name]*nats+kl[name], minDivergence)
		out = append(out, Sensitivity{Name: it.info.Name, Elements: it.numel, Value: d / float64(it.numel)})
	}
	return out, nil
}

// probeProgress returns the function that reports, if Options.Progress
// is set, that the probe is done with one more of its.
func (c *conversion) probeProgress(its []*item) func(*item) {
	if c.o.Progress == nil {
		return func(*item) {}
	}
	p := Progress{Phase: PhaseProbe, Pass: 1, TotalTensors: len(its)}
	for _, it := range its {
		p.TotalWeights += it.numel
	}
	return func(it *item) {
		p.Tensors++
		p.Weights += it.numel
		p.Tensor = it.info.Name
		c.o.Progress(p)
	}
}

// probeCoded returns the matrix it (m's tensor name) coded at the probe
// step and decoded, in m's layout.
func (c *conversion) probeCoded(m calibModel, it *item, name string, step float64) ([]float32, error) {
	coded, err := c.probeRoundTrip(it, step)
	if err != nil {
		return nil, err
	}
	return m.ModelLayout(name, coded), nil
}

// probeRoundTrip returns the matrix it coded at the probe step (no
// Hessian, no levels) and decoded, in the checkpoint's layout.
func (c *conversion) probeRoundTrip(it *item, step float64) ([]float32, error) {
	data, err := c.src.ReadTensor(it.info.Name)
	if err != nil {
		return nil, err
	}
	t := &codec.Tensor{Name: it.info.Name, DType: it.info.DType, Shape: it.shape, Data: data}
	o, err := c.options(it, t)
	if err != nil {
		return nil, err
	}
	o.Step, o.Hessian, o.Levels = step, nil, nil
	return roundTrip(it.codec, t, o)
}

// meanHessian returns the mean of the self moments XX as a Hessian. It
// takes over mo's sums, which it leaves nil: an N×N float64 matrix is
// 1.6 GB for the 8 B shape's down projection.
func meanHessian(mo *llama.Moments) *calib.Hessian {
	h := mo.XX
	mo.XX = nil
	n := float64(max(mo.Count, 1))
	for i, v := range h {
		h[i] = v / n
	}
	return &calib.Hessian{N: mo.N, Data: h, Tokens: mo.Count}
}

// sqDiff returns Σ (a_i − b_i)², or Σ a_i² when b is nil, in float64.
func sqDiff(a, b []float32) float64 {
	var s float64
	for i, v := range a {
		d := float64(v)
		if b != nil {
			d -= float64(b[i])
		}
		s += d * d
	}
	return s
}

// roundTrip encodes t with the codec id and decodes it in memory, giving
// the values a reader of the file would see.
func roundTrip(id string, t *codec.Tensor, o *codec.EncodeOptions) ([]float32, error) {
	cd, err := codec.LookupEncoder(id)
	if err != nil {
		return nil, err
	}
	enc, err := cd.Encode(t, o)
	if err != nil {
		return nil, err
	}
	e := &format.Tensor{Name: t.Name, DType: t.DType, Shape: t.Shape, Codec: id, Params: enc.Params, Blob: -1, View: enc.View}
	env := memEnv{aux: map[string][]byte{}}
	for _, a := range enc.Aux {
		env.aux[a.Name] = a.Data
		e.Aux = append(e.Aux, format.NamedSection{Name: a.Name, Inline: a.Data})
	}
	if enc.Blob != nil {
		e.Blob, env.blob = 0, enc.Blob.Data
	}
	for _, g := range enc.Groups {
		e.Groups = append(e.Groups, format.Group{End: g.End, Section: format.Section{Length: uint64(len(g.Data))}})
	}
	dd, err := codec.LookupDecoder(id)
	if err != nil {
		return nil, err
	}
	dec, err := dd.NewDecoder(e, env)
	if err != nil {
		return nil, err
	}
	size := uint64(t.DType.Size())
	out := make([]byte, uint64(len(t.Data)))
	for i, g := range enc.Groups {
		if err := dec.DecodeGroup(i, g.Data, out[e.GroupStart(i)*size:g.End*size]); err != nil {
			return nil, err
		}
	}
	return dtype.ToFloat32(nil, out, t.DType)
}

// memEnv serves a tensor's aux data and blob from memory.
type memEnv struct {
	aux  map[string][]byte
	blob []byte
}

func (m memEnv) Aux(name string) ([]byte, error) {
	b, ok := m.aux[name]
	if !ok {
		return nil, format.Errorf(-1, "no aux section %q", name)
	}
	return b, nil
}

func (m memEnv) Blob(parse func([]byte) (any, error)) (any, error) {
	if m.blob == nil {
		return nil, format.Errorf(-1, "no blob")
	}
	return parse(m.blob)
}
