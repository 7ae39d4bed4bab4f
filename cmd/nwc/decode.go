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
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		return usagef("want one input and -o OUT.safetensors")
	}
	r, err := reader.Open(pos[0], nil)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := convert.ToSafetensors(r.Reader, *out, *dt); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d tensors\n", *out, len(r.Tensors()))
	return nil
}
