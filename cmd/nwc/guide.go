package main

import (
	"context"
	"fmt"
	"math"

	"github.com/nwcodec/nwc/calib"
	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/llama"
	"github.com/nwcodec/nwc/tokenizer"
)

// guideFlags are convert's output-guidance flags.
type guideFlags struct {
	hessians, importance, calibText, tokPath string
	ldlqBlock, calibTokens                   int
	// calibGenerate tokens sampled from the model itself (seed
	// calibSeed) join the calibration text.
	calibGenerate int
	calibSeed     uint64
	// seqDamp is Guidance.SequentialDamp (0: the default).
	seqDamp                                 float64
	noLDLQ, noColumnSteps, levels, allocate bool
	noSequential, noTokenSteps              bool
	weights                                 uint64 // in the checkpoint
	// whole: the conversion runs in this process (not nwc plan or a
	// part), so guidance may read the model a layer at a time.
	whole bool
}

// lazyMinWeights is the checkpoint size above which --calib reads the
// model a layer at a time instead of loading it (4 bytes a weight) and
// its Hessians whole. Below it the whole-model path stays: on stories260K
// it gave a KL divergence from the original of 0.046 nats/token at 4 bits
// against 0.084 for the layer-streaming one, whose first rate control and
// allocation probe see no full-text Hessians of the later layers' inputs.
const lazyMinWeights = 256 << 20

// guidance builds the output-guided options of convert from its flags:
// Hessians from a file or computed on calibration text; per-column steps
// and LDLQ unless turned off; with calibration text, sequential guidance
// unless turned off; the paper's importance levels when asked for; and
// bit allocation.
func guidance(ctx context.Context, in string, f guideFlags) (*convert.Guidance, error) {
	hessians, importance, calibText, tokPath, allocate := f.hessians, f.importance, f.calibText, f.tokPath, f.allocate
	calibrated := calibText != "" || f.calibGenerate > 0
	set := 0
	for _, s := range []bool{hessians != "", importance != "", calibrated} {
		if s {
			set++
		}
	}
	if !calibrated && (f.noSequential || f.noTokenSteps || f.calibTokens != 0) {
		return nil, usagef("--no-sequential, --no-token-steps and --calib-tokens need --calib or --calib-generate")
	}
	if f.seqDamp < 0 || math.IsNaN(f.seqDamp) || math.IsInf(f.seqDamp, 0) || f.seqDamp > 0 && !calibrated {
		return nil, usagef("--seq-damp %v: want a finite number above 0, with --calib or --calib-generate", f.seqDamp)
	}
	if f.calibTokens < 0 || f.calibGenerate < 0 {
		return nil, usagef("--calib-tokens %d or --calib-generate %d is negative", f.calibTokens, f.calibGenerate)
	}
	switch {
	case set == 0:
		if allocate {
			return nil, usagef("--allocate needs --hessians, --importance, --calib or --calib-generate")
		}
		return nil, nil
	case set > 1:
		return nil, usagef("give one of --hessians, --importance and --calib/--calib-generate")
	case calibrated && tokPath == "":
		return nil, usagef("--calib and --calib-generate need --tokenizer")
	case f.calibGenerate > 0 && f.weights > lazyMinWeights:
		return nil, usagef("--calib-generate runs the whole model in memory, which nwc convert does not load above %d Mi weights: sample text with nwc eval generate --temperature 1 and pass it to --calib", lazyMinWeights>>20)
	}
	g := &convert.Guidance{
		Importance:  f.levels,
		ColumnSteps: !f.noColumnSteps,
		LDLQ:        !f.noLDLQ && importance == "",
		LDLQBlock:   f.ldlqBlock,
		Allocate:    allocate,

		SequentialDamp: f.seqDamp,
	}
	var err error
	switch {
	case hessians != "":
		g.Hessians, err = calib.ReadHessians(hessians)
	case importance != "":
		g.Hessians, err = calib.ReadHessians(importance)
	case f.weights > lazyMinWeights && (!f.noSequential || f.whole):
		// Sequential guidance, or without it layer Hessians (which a
		// plan cannot use), derives every matrix's Hessian itself, a
		// layer at a time from the checkpoint: nothing is loaded whole.
		var docs [][]int
		var z *llama.Lazy
		if z, docs, err = lazyCalibration(in, calibText, tokPath, f.calibTokens); err != nil {
			return nil, err
		}
		g.Calib = &convert.Calibration{Lazy: z, Docs: docs}
		g.Sequential = !f.noSequential
		g.TokenSteps = !f.noTokenSteps
		g.LayerHessians = f.noSequential
		if allocate {
			g.Probe = &convert.Probe{}
		}
	default:
		var m *llama.Model
		var docs [][]int
		m, docs, g.Hessians, err = calibrate(ctx, in, calibSource{text: calibText, tokPath: tokPath, generate: f.calibGenerate, seed: f.calibSeed}, f.calibTokens)
		g.Calib = &convert.Calibration{Model: m, Docs: docs}
		g.Sequential = !f.noSequential
		g.TokenSteps = !f.noTokenSteps
		if allocate {
			// With the model at hand, measure each matrix's effect on
			// the loss rather than estimate it from the Hessians.
			g.Probe = &convert.Probe{}
		}
	}
	if err != nil {
		return nil, err
	}
	return g, nil
}

// lazyCalibration opens the model at path for reading a layer at a time
// and tokenizes the calibration text. The checkpoint stays open until the
// program exits: the conversion reads it to the end.
func lazyCalibration(path, text, tokPath string, maxTokens int) (*llama.Lazy, [][]int, error) {
	z, _, err := llama.OpenLazy(path)
	if err != nil {
		return nil, nil, fmt.Errorf("--calib: opening %s as a Llama model: %w", path, err)
	}
	tok, err := tokenizer.Load(tokPath)
	if err != nil {
		return nil, nil, err
	}
	docs, err := llama.LoadDocs(text, tok)
	if err != nil {
		return nil, nil, err
	}
	return z, capTokens(docs, maxTokens), nil
}

// A calibSource says what text calibration runs the model on: the
// documents of a text file, then generate tokens sampled from the model
// itself (llama.GenerateDocs with seed).
type calibSource struct {
	text, tokPath string
	generate      int
	seed          uint64
}

// DefaultCalibSeed is the seed of --calib-generate's samples. nwc eval
// generate and nwc bench ppl draw held-out text with seed 1 by default, so
// the calibration samples are other stories.
const DefaultCalibSeed = 2

// docs tokenizes the text file and appends the generated samples.
func (c calibSource) docs(ctx context.Context, m *llama.Model) ([][]int, error) {
	tok, err := tokenizer.Load(c.tokPath)
	if err != nil {
		return nil, err
	}
	var docs [][]int
	if c.text != "" {
		if docs, err = llama.LoadDocs(c.text, tok); err != nil {
			return nil, err
		}
	}
	if c.generate > 0 {
		gen, err := generateDocs(ctx, m, tok, c.seed, c.generate)
		if err != nil {
			return nil, fmt.Errorf("--calib-generate: %w", err)
		}
		docs = append(docs, gen...)
	}
	return docs, nil
}

// generateDocs samples n tokens of stories from m at temperature 1, each
// from BOS alone up to the model's context and ending at BOS or EOS: the
// model's own idea of its domain, with no data.
func generateDocs(ctx context.Context, m *llama.Model, tok *tokenizer.Tokenizer, seed uint64, n int) ([][]int, error) {
	bos := tok.BOS()
	if bos < 0 {
		return nil, fmt.Errorf("the tokenizer has no BOS token to start samples from")
	}
	opt := llama.SampleOptions{Temperature: 1}
	for _, id := range []int{bos, tok.EOS()} {
		if id >= 0 {
			opt.Stop = append(opt.Stop, id)
		}
	}
	return llama.GenerateDocs(ctx, m, []int{bos}, m.Config().SeqLen-1, opt, seed, n)
}

// calibrate loads the model at path, gathers its calibration documents
// from src (the first maxTokens tokens of them if maxTokens > 0) and
// collects the Hessians of its linear layers on them.
func calibrate(ctx context.Context, path string, src calibSource, maxTokens int) (*llama.Model, [][]int, *calib.Set, error) {
	m, err := llama.Load(path)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--calib: loading %s as a Llama model: %w", path, err)
	}
	docs, err := src.docs(ctx, m)
	if err != nil {
		return nil, nil, nil, err
	}
	docs = capTokens(docs, maxTokens)
	set, err := hessiansOf(ctx, m, docs)
	return m, docs, set, err
}

// capTokens returns the first maxTokens tokens of docs (the last document
// cut short), or docs itself if maxTokens ≤ 0 or they are shorter.
func capTokens(docs [][]int, maxTokens int) [][]int {
	if maxTokens <= 0 {
		return docs
	}
	for i, n := 0, 0; i < len(docs); i++ {
		if n+len(docs[i]) >= maxTokens {
			out := append([][]int(nil), docs[:i]...)
			return append(out, docs[i][:maxTokens-n])
		}
		n += len(docs[i])
	}
	return docs
}

// hessiansOf collects the Hessians of m's linear layers on docs.
func hessiansOf(ctx context.Context, m *llama.Model, docs [][]int) (*calib.Set, error) {
	hs, err := llama.Calibrate(ctx, m, docs, m.Config().SeqLen, 0)
	if err != nil {
		return nil, err
	}
	return calib.FromLlama(m, hs)
}
