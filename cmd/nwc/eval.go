package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"

	"github.com/nwcodec/nwc/llama"
	"github.com/nwcodec/nwc/tokenizer"
)

// runEval dispatches `nwc eval ppl` and `nwc eval generate`.
func runEval(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usagef("want a subcommand: ppl, kl or generate")
	}
	switch args[0] {
	case "ppl":
		return runEvalPPL(args[1:], stdout, stderr)
	case "kl":
		return runEvalKL(args[1:], stdout, stderr)
	case "generate":
		return runEvalGenerate(args[1:], stdout, stderr)
	}
	return usagef("unknown eval subcommand %q, want ppl, kl or generate", args[0])
}

// runEvalKL measures how far a compressed model's predictions are from the
// original's: the mean KL divergence of the next-token distributions over
// the text, windowed as eval ppl is. It is a far less noisy comparison of
// compression settings than the change in nll, which has a first-order
// term of either sign.
func runEvalKL(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval kl", stderr)
	mf := addModelFlags(fs)
	ref := fs.String("ref", "", "reference model `file` (the original) of the same configuration (required)")
	tf := addTextFlags(fs, "evaluation")
	asJSON := fs.Bool("json", false, `print {"tokens":N,"kl_per_token":x}`)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *tf.text == "" || *ref == "" {
		return usagef("want --model, --ref, --tokenizer and --text, no positional arguments")
	}
	m, tok, err := mf.load()
	if err != nil {
		return err
	}
	r, err := llama.Load(*ref)
	if err != nil {
		return err
	}
	docs, w, err := tf.docs(m, tok)
	if err != nil {
		return err
	}
	kl, err := llama.EvalKL(r, m, docs, w)
	if err != nil {
		return err
	}
	if kl.Tokens == 0 {
		return fmt.Errorf("%s: no tokens to score", *tf.text)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(struct {
			Tokens int     `json:"tokens"`
			KL     float64 `json:"kl_per_token"`
		}{kl.Tokens, kl.Mean()})
	}
	_, err = fmt.Fprintf(stdout, "%s vs %s: %d tokens, KL %.5f nats/token\n", *mf.model, *ref, kl.Tokens, kl.Mean())
	return err
}

// modelFlags are the flags every command running a model shares.
type modelFlags struct {
	model, tok *string
}

func addModelFlags(fs *flag.FlagSet) modelFlags {
	return modelFlags{
		model: fs.String("model", "", "model `file`: llama2.c .bin, .safetensors or .nwc (required)"),
		tok:   fs.String("tokenizer", "", "tokenizer `file`: llama2.c tokenizer.bin or Hugging Face tokenizer.json (required)"),
	}
}

// load opens the model and the tokenizer.
func (f modelFlags) load() (*llama.Model, *tokenizer.Tokenizer, error) {
	if *f.model == "" || *f.tok == "" {
		return nil, nil, usagef("--model and --tokenizer are required")
	}
	m, err := llama.Load(*f.model)
	if err != nil {
		return nil, nil, err
	}
	tok, err := tokenizer.Load(*f.tok)
	if err != nil {
		return nil, nil, err
	}
	// Hugging Face models often pad their embedding past the tokenizer's
	// vocabulary, so only a larger tokenizer is an error.
	if tok.VocabSize() > m.Config().VocabSize {
		return nil, nil, fmt.Errorf("tokenizer has %d tokens, model only %d", tok.VocabSize(), m.Config().VocabSize)
	}
	return m, tok, nil
}

// window returns the evaluation window: the flag's value, or the model's
// context length when it is 0.
func window(m *llama.Model, w int) int {
	if w == 0 {
		return m.Config().SeqLen
	}
	return w
}

// textFlags are the flags of the commands that run a model over a text.
type textFlags struct {
	text *string
	win  *int
}

// addTextFlags adds --text (described as what text) and --window.
func addTextFlags(fs *flag.FlagSet, what string) textFlags {
	return textFlags{
		text: fs.String("text", "", what+" text `file`, one document per non-blank line (required)"),
		win:  fs.Int("window", 0, "tokens per forward pass; 0 means the model's context length"),
	}
}

// docs reads and tokenizes the text, and returns it with the window to
// run m over it with.
func (f textFlags) docs(m *llama.Model, tok *tokenizer.Tokenizer) ([][]int, int, error) {
	docs, err := llama.LoadDocs(*f.text, tok)
	return docs, window(m, *f.win), err
}

func runEvalPPL(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval ppl", stderr)
	mf := addModelFlags(fs)
	tf := addTextFlags(fs, "evaluation")
	asJSON := fs.Bool("json", false, `print {"tokens":N,"nll_per_token":x,"ppl":y}`)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *tf.text == "" {
		return usagef("want --model, --tokenizer and --text, no positional arguments")
	}
	m, tok, err := mf.load()
	if err != nil {
		return err
	}
	docs, w, err := tf.docs(m, tok)
	if err != nil {
		return err
	}
	r, err := llama.EvalNLL(m, docs, w)
	if err != nil {
		return err
	}
	if r.Tokens == 0 {
		return fmt.Errorf("%s: no tokens to score", *tf.text)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(struct {
			Tokens int     `json:"tokens"`
			NLL    float64 `json:"nll_per_token"`
			PPL    float64 `json:"ppl"`
		}{r.Tokens, r.MeanNLL(), r.Perplexity()})
	}
	_, err = fmt.Fprintf(stdout, "%s: %d tokens, %.4f nats/token, perplexity %.4f\n", *mf.model, r.Tokens, r.MeanNLL(), r.Perplexity())
	return err
}

// runEvalGenerate continues a prompt, greedily or by sampling, and prints
// one sample per line (line breaks inside a sample become spaces), so
// that its output is a text file of documents for eval and calibrate.
func runEvalGenerate(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("eval generate", stderr)
	mf := addModelFlags(fs)
	prompt := fs.String("prompt", "Once upon a time", "text to continue")
	n := fs.Int("n", 64, "maximum number of tokens to generate per sample")
	temp := fs.Float64("temperature", 0, "sampling temperature; 0 picks the most likely token (greedy)")
	topP := fs.Float64("top-p", 0, "nucleus sampling: draw only from the most likely tokens whose probability sums to this (0 or 1: all)")
	seed := fs.Uint64("seed", 1, "random seed: sample i draws from math/rand/v2's PCG seeded with (seed, i)")
	count := fs.Int("count", 1, "number of samples")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	// The model may also be given as the only positional argument.
	if len(pos) == 1 && *mf.model == "" {
		*mf.model, pos = pos[0], nil
	}
	if len(pos) != 0 {
		return usagef("want --model (or one MODEL argument) and --tokenizer")
	}
	if *n < 0 {
		return usagef("-n %d is negative", *n)
	}
	if *count < 1 {
		return usagef("--count %d: want at least 1", *count)
	}
	opt := llama.SampleOptions{Temperature: *temp, TopP: *topP}
	if err := opt.Validate(); err != nil {
		return usagef("%v", err)
	}
	m, tok, err := mf.load()
	if err != nil {
		return err
	}
	for _, id := range []int{tok.BOS(), tok.EOS()} {
		if id >= 0 {
			opt.Stop = append(opt.Stop, id)
		}
	}
	ids := tok.Encode(*prompt, true, false)
	ctx := commandContext()
	// Samples run together in batches (the same tokens as one at a time),
	// each batch printed as soon as it is done.
	bs := llama.BatchSize(m)
	for first := 0; first < *count; first += bs {
		srcs := make([]rand.Source, min(bs, *count-first))
		for i := range srcs {
			srcs[i] = llama.SampleRNG(*seed, uint64(first+i))
		}
		outs, err := llama.SampleBatch(ctx, m, ids, *n, opt, srcs)
		if err != nil {
			return err
		}
		for _, out := range outs {
			text := strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ").Replace(tok.DecodeAll(out))
			if _, err := fmt.Fprintln(stdout, text); err != nil {
				return err
			}
		}
	}
	return nil
}
