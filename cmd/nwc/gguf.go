package main

import (
	"context"
	"flag"
	"os"

	"github.com/nwcodec/nwc/gguf"
	"github.com/nwcodec/nwc/llama"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/tokenizer"
)

// ggufFlags are decode's flags for a GGUF output.
type ggufFlags struct {
	config, tokenizer, name string
	alignment               int
}

func addGGUFFlags(fs *flag.FlagSet) *ggufFlags {
	g := &ggufFlags{}
	fs.StringVar(&g.config, "config", "", "GGUF output: the model's Hugging Face config.json `FILE` (when the .nwc metadata lacks the configuration)")
	fs.StringVar(&g.tokenizer, "tokenizer", "", "GGUF output: llama2.c tokenizer `FILE` written as tokenizer.ggml.*")
	fs.StringVar(&g.name, "name", "", "GGUF output: general.name")
	fs.IntVar(&g.alignment, "alignment", gguf.DefaultAlignment, "GGUF output: alignment of tensor data in bytes, a power of two")
	return g
}

// used reports whether any GGUF-only flag was given.
func (g *ggufFlags) used(set map[string]bool) bool {
	return set["config"] || set["tokenizer"] || set["name"] || set["alignment"]
}

// exportGGUF writes r as a GGUF file at target.
func exportGGUF(ctx context.Context, r *reader.Reader, target string, g *ggufFlags, dt string, jobs int,
	progress func(done, _ int, weights, _ uint64)) error {
	o := &gguf.ExportOptions{DType: dt, Alignment: g.alignment, Name: g.name, Jobs: jobs, Progress: progress}
	if g.config != "" {
		f, err := os.Open(g.config)
		if err != nil {
			return err
		}
		defer f.Close()
		if o.Config, err = llama.ConfigFromJSON(f); err != nil {
			return err
		}
	}
	if g.tokenizer != "" {
		tok, err := tokenizer.Load(g.tokenizer)
		if err != nil {
			return err
		}
		o.Tokenizer = tok
	}
	return gguf.Export(ctx, r, target, o)
}
