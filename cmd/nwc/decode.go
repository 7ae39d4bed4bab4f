package main

import (
	"fmt"
	"io"

	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/reader"
)

func runDecode(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("decode", stderr)
	out := fs.String("o", "", "output .safetensors `file` (required)")
	dt := fs.String("dtype", convert.DTypeOrig, "output dtype of float tensors: orig, f32, f16 or bf16")
	force := fs.Bool("force", false, "replace OUT if it exists")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		return usagef("want one input and -o OUT.safetensors")
	}
	target, err := checkOutput(*out, "a safetensors file", *force, pos[0])
	if err != nil {
		return err
	}
	r, err := reader.Open(pos[0], nil)
	if err != nil {
		return explainNWCErr(pos[0], "decode", err)
	}
	defer r.Close()
	if err := convert.ToSafetensors(r.Reader, target, *dt); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d tensors\n", *out, len(r.Tensors()))
	return nil
}
