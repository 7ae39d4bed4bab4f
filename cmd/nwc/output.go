package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/internal/atomicfile"
	"github.com/nwcodec/nwc/internal/sniff"
	"github.com/nwcodec/nwc/safetensors"
)

// checkOutput decides where a command may write out, given the files it
// reads: it refuses "-" (neither output can be streamed yet), an output
// that is one of the inputs, a directory or device, and an existing file
// unless force is set. It returns the path to write, with symbolic links
// resolved so that a link at out keeps pointing at the new file.
func checkOutput(out, what string, force bool, inputs ...string) (string, error) {
	if out == "-" {
		return "", usagef("-o -: %s cannot be written to standard output; give a file path", what)
	}
	if err := atomicfile.CheckOutput(out, inputs...); err != nil {
		switch {
		case errors.Is(err, atomicfile.ErrSameFile):
			return "", usagef("refusing to overwrite an input: %v", strings.TrimSuffix(err.Error(), ": "+atomicfile.ErrSameFile.Error()))
		case errors.Is(err, atomicfile.ErrNotRegular):
			return "", usagef("refusing to replace %v", strings.TrimSuffix(err.Error(), ": "+atomicfile.ErrNotRegular.Error()))
		}
		return "", err
	}
	target, err := atomicfile.Target(out)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(target); err == nil && !force {
		return "", usagef("%s exists; add --force to replace it", out)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	return target, nil
}

// sourceFiles lists every file a safetensors checkpoint opened from path
// reads: the file itself, or the index and each shard it lists, or for a
// directory every checkpoint file in it (more than is read, which only
// widens what an output may not overwrite).
func sourceFiles(path string, src safetensors.Source) []string {
	files := []string{path}
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		ents, _ := os.ReadDir(path)
		for _, e := range ents {
			if n := e.Name(); strings.HasSuffix(n, ".safetensors") || strings.HasSuffix(n, ".json") {
				files = append(files, filepath.Join(path, n))
			}
		}
		path = filepath.Join(path, "model.safetensors.index.json")
	}
	if sh, ok := src.(*safetensors.Sharded); ok {
		for _, n := range sh.Shards() {
			files = append(files, filepath.Join(filepath.Dir(path), n))
		}
	}
	return files
}

// wrongInput explains an input of the wrong type: what it is and what the
// command reads instead. It keeps the library error for errors.Is (and so
// for the exit status, 1).
type wrongInput struct {
	path, kind, want string
	err              error
}

func (e *wrongInput) Error() string {
	return fmt.Sprintf("%s is %s; %s", e.path, e.kind, e.want)
}

func (e *wrongInput) Unwrap() error { return e.err }

const convertReads = "nwc convert reads safetensors checkpoints (a .safetensors file, a model.safetensors.index.json or a directory)"

// explainSafetensorsErr rewrites the failure to open a convert input that
// is recognisably another type of file.
func explainSafetensorsErr(path string, err error) error {
	var wf *safetensors.WrongFormatError
	if !errors.As(err, &wf) {
		return err
	}
	want := convertReads
	switch wf.Kind {
	case string(sniff.NWC):
		want = "it is already compressed (nwc info shows it; nwc decode turns it back into safetensors)"
	case string(sniff.GGUF), string(sniff.Llama2c), string(sniff.Llama2cV2), string(sniff.Zip), string(sniff.Pickle):
		want = convertReads + "; convert the model to safetensors first"
	}
	return &wrongInput{path: path, kind: wf.Kind, want: want, err: err}
}

// explainNWCErr rewrites the failure to open a .nwc input (decode, info,
// nwc-verify) that is recognisably another type of file.
func explainNWCErr(path, cmd string, err error) error {
	if format.Class(err) != "format" {
		return err
	}
	k, serr := sniff.File(path)
	if serr != nil || k == sniff.Unknown || k == sniff.NWC {
		return err
	}
	want := fmt.Sprintf("nwc %s reads .nwc files", cmd)
	if k == sniff.Safetensors {
		want += " (nwc convert makes one from it)"
	}
	return &wrongInput{path: path, kind: string(k), want: want, err: err}
}

// setFlags returns the names of the flags given on the command line.
func setFlags(fs *flag.FlagSet) map[string]bool {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set
}

// positive refuses a given numeric flag that is not a finite number above
// zero: 0 and NaN would silently select a default.
func positive(set map[string]bool, name string, v float64) error {
	if set[name] && (math.IsNaN(v) || math.IsInf(v, 0) || v <= 0) {
		return usagef("--%s %v: want a finite number above 0", name, v)
	}
	return nil
}

// takesBits reports whether a codec's rate can be set with --bits, and
// why not.
func takesBits(id string) (bool, string) {
	switch id {
	case codec.Raw:
		return false, "raw stores every weight as it is"
	case codec.Lossless:
		return false, "lossless has no rate to set (for a lossy file add --codec nwc, ecsq, tcq or rtn)"
	case "q4k":
		return false, "q4k has a fixed rate of 4.5 bits per weight"
	case "rtn":
		return true, ""
	}
	cd, err := codec.LookupEncoder(id)
	if err != nil {
		return true, "" // reported by the conversion itself
	}
	if _, ok := cd.(codec.Stepper); !ok {
		return false, id + " has a fixed rate"
	}
	return true, ""
}

// checkConvertFlags refuses convert flags that cannot take effect: rates
// for a codec without one, values that are not positive and finite, and
// codec-specific flags given to another codec.
func checkConvertFlags(set map[string]bool, codecID string, bits, step float64, tensorBits []string, rtnBits, group, groupKiB int) error {
	if err := positive(set, "bits", bits); err != nil {
		return err
	}
	if err := positive(set, "step", step); err != nil {
		return err
	}
	ok, why := takesBits(codecID)
	for _, name := range []string{"bits", "tensor-bits", "step"} {
		if set[name] && !ok {
			return usagef("--%s has no effect with --codec %s: %s", name, codecID, why)
		}
	}
	if set["step"] && (codecID == "rtn") {
		return usagef("--step has no effect with --codec rtn, which is set by its bit width (--bits or --rtn-bits)")
	}
	for name, v := range map[string]int{"rtn-bits": rtnBits, "group": group} {
		if set[name] && codecID != "rtn" {
			return usagef("--%s applies to --codec rtn only, not %s", name, codecID)
		}
		if set[name] && v <= 0 {
			return usagef("--%s %d: want a number above 0", name, v)
		}
	}
	for _, name := range []string{"no-learned"} {
		if set[name] && codecID != "nwc" {
			return usagef("--%s applies to --codec nwc only, not %s", name, codecID)
		}
	}
	if set["rtn-bits"] && set["bits"] {
		return usagef("--rtn-bits and --bits both set rtn's width; give one")
	}
	if set["group-kib"] && groupKiB <= 0 {
		return usagef("--group-kib %d: want a number above 0", groupKiB)
	}
	return nil
}

// checkTensorBits refuses --tensor-bits patterns that match no matrix of
// the checkpoint: a mistyped name must not pass silently.
func checkTensorBits(args []string, tbs []convert.TensorBits, src safetensors.Source) error {
	for i, tb := range tbs {
		matched, matrix := 0, false
		for _, ti := range src.Tensors() {
			if tb.Pattern.MatchString(ti.Name) {
				matched++
				matrix = matrix || len(ti.Shape) >= 2
			}
		}
		switch {
		case matched == 0:
			return usagef("--tensor-bits %s: the pattern matches none of the %d tensors (for example %s)", args[i], len(src.Tensors()), exampleNames(src))
		case !matrix:
			return usagef("--tensor-bits %s: the pattern matches only 1-D tensors, which are stored lossless", args[i])
		}
	}
	return nil
}

func exampleNames(src safetensors.Source) string {
	var names []string
	for i, ti := range src.Tensors() {
		if i == 3 {
			names = append(names, "…")
			break
		}
		names = append(names, ti.Name)
	}
	return strings.Join(names, ", ")
}
