package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"nwc/codec"
	"nwc/convert"
	"nwc/safetensors"
)

func runConvert(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("convert", stderr)
	out := fs.String("o", "", "output .nwc `file` (required)")
	codecID := fs.String("codec", codec.Lossless, "codec for every tensor: raw or lossless")
	asJSON := fs.Bool("json", false, "print a JSON summary")
	groupKiB := fs.Int("group-kib", codec.DefaultGroupBytes>>10, "decoded size of a chunk group in KiB")
	align := fs.Uint("align-log2", 6, "log2 of the section alignment (6 = 64 bytes)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		return usagef("want one input and -o OUT.nwc")
	}
	src, err := safetensors.OpenPath(pos[0])
	if err != nil {
		return err
	}
	defer src.Close()
	opts := &convert.Options{
		Codec:      *codecID,
		SourceName: sourceName(pos[0]),
	}
	opts.Encode.GroupBytes = *groupKiB << 10
	opts.Writer.AlignLog2 = uint8(*align)
	if isTerminal(os.Stderr) && !*asJSON {
		opts.Progress = func(done, total int, name string) {
			fmt.Fprintf(stderr, "\r\x1b[K[%d/%d] %s", done, total, name)
			if done == total {
				fmt.Fprintln(stderr)
			}
		}
	}
	st, err := convert.ToNWC(src, *out, opts)
	if err != nil {
		return err
	}
	ratio := 0.0
	if st.InBytes > 0 {
		ratio = float64(st.OutBytes) / float64(st.InBytes)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{
			"input": pos[0], "output": *out, "codec": *codecID,
			"tensors": st.Tensors, "input_bytes": st.InBytes, "output_bytes": st.OutBytes, "ratio": ratio,
		})
	}
	fmt.Fprintf(stdout, "%s: %d tensors, %d → %d bytes (%.1f%%)\n", *out, st.Tensors, st.InBytes, st.OutBytes, 100*ratio)
	return nil
}

// sourceName is the file name recorded for a single-file source.
func sourceName(path string) string {
	fi, err := os.Stat(path)
	if err == nil && fi.IsDir() {
		return "model.safetensors"
	}
	return path
}

// isSafetensorsInvalid reports whether err says the safetensors input is
// invalid (exit status 1) rather than unreadable.
func isSafetensorsInvalid(err error) bool {
	return errors.Is(err, safetensors.ErrFormat) || errors.Is(err, safetensors.ErrUnsupported) || errors.Is(err, safetensors.ErrTooLarge)
}
