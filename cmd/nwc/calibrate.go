package main

import (
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"

	"github.com/nwcodec/nwc/calib"
	"github.com/nwcodec/nwc/llama"
)

// runCalibrate collects the input Hessians of every linear layer of a model
// over a text and writes them in calib's Hessian file schema.
func runCalibrate(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("calibrate", stderr)
	mf := addModelFlags(fs)
	tf := addTextFlags(fs, "calibration")
	out := fs.String("o", "", "output Hessian `file` (.safetensors, required)")
	maxTokens := fs.Int("max-tokens", 0, "stop after this many tokens; 0 uses the whole text")
	f64 := fs.Bool("f64", false, "store float64 Hessians instead of float32")
	asJSON := fs.Bool("json", false, "print a JSON summary")
	quiet := fs.Bool("quiet", false, "no progress line on stderr")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *tf.text == "" || *out == "" {
		return usagef("want --model, --tokenizer, --text and -o, no positional arguments")
	}
	if *maxTokens < 0 {
		return usagef("--max-tokens %d is negative", *maxTokens)
	}
	// Calibration is re-run into the same file as a matter of course, so
	// an existing output is replaced without --force; inputs never are.
	target, err := checkOutput(*out, "a Hessian file", true, *mf.model, *mf.tok, *tf.text)
	if err != nil {
		return err
	}
	reportLeftovers(stderr, "calibrate", target)
	m, tok, err := mf.load()
	if err != nil {
		return err
	}
	docs, w, err := tf.docs(m, tok)
	if err != nil {
		return err
	}
	pl := newProgress(stderr, *quiet)
	started := false
	ctx := commandContext()
	hs, err := llama.CalibrateProgress(ctx, m, docs, w, *maxTokens, func(done, total int) {
		if done == 0 || total == 0 {
			return
		}
		if pl != nil && !started {
			pl.Start("calibrate", total, "tokens", 0)
			started = true
		}
		pl.Set(done, 0)
	})
	pl.Finish()
	if err != nil {
		return err
	}
	set, err := calib.FromLlama(m, hs)
	if err != nil {
		return fmt.Errorf("%s: %w", *tf.text, err)
	}
	set.F64 = *f64
	set.Metadata = map[string]string{
		"model": filepath.Base(*mf.model),
		"text":  filepath.Base(*tf.text),
	}
	if err := calib.WriteHessians(*out, set); err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{
			"output": *out, "tokens": set.Tokens, "weights": len(set.Weights()), "hessians": len(set.Stored()),
		})
	}
	_, err = fmt.Fprintf(stdout, "%s: %d Hessians for %d weights over %d tokens\n", *out, len(set.Stored()), len(set.Weights()), set.Tokens)
	return err
}
