package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/internal/atomicfile"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/safetensors"
)

// Distributed conversion (docs/distributed.md):
//
//	nwc plan IN -o plan.json --parts N [convert's options]
//	nwc convert IN --plan plan.json --part I/N|I|auto -o DIR   (one part, on any machine)
//	nwc merge DIR -o one.nwc                                    (optional: one file)
//
// The plan records convert's options (Plan.Args), so a planned conversion
// takes none but where to write and how to run: -o, --plan, --part,
// --jobs, --quiet, --json and --force.

// runtimeFlags are the flags of nwc convert and nwc plan that do not
// change what is written, and so are not recorded in a plan.
var runtimeFlags = map[string]bool{"o": true, "force": true, "jobs": true, "quiet": true, "json": true,
	"plan": true, "part": true, "parts": true}

// unplannable are the options a plan cannot carry: sequential guidance and
// the measured allocation probe run the model as compressed so far.
var unplannable = []string{"calib", "tokenizer", "calib-tokens", "calib-generate", "calib-seed", "seq-damp", "no-sequential", "no-token-steps"}

// Environment variables --part auto reads.
const (
	envK8sIndex   = "JOB_COMPLETION_INDEX" // Kubernetes Indexed Job: 0 … completions−1
	envSlurmID    = "SLURM_ARRAY_TASK_ID"  // Slurm job array: the task's id, as given to --array
	envSlurmMin   = "SLURM_ARRAY_TASK_MIN"
	envSlurmStep  = "SLURM_ARRAY_TASK_STEP"
	envSlurmCount = "SLURM_ARRAY_TASK_COUNT"
)

type planFlagValues struct {
	parts *int    // nwc plan
	plan  *string // nwc convert
	part  *string // nwc convert
}

// planFlags registers the flags of command name that plans add.
func planFlags(fs *flag.FlagSet, name string) *planFlagValues {
	v := &planFlagValues{parts: new(int), plan: new(string), part: new(string)}
	switch name {
	case "plan":
		fs.IntVar(v.parts, "parts", 1, "number of `N` parts to split the tensors into (contiguous, about equal weight counts)")
	case "convert":
		fs.StringVar(v.plan, "plan", "", "convert as the plan `FILE` (nwc plan) decided; its options come from the plan")
		fs.StringVar(v.part, "part", "", "with --plan: convert part `I/N` (or I, 1-based) into -o DIR/model-0000I-of-0000N.nwc; auto reads JOB_COMPLETION_INDEX (Kubernetes, 0-based) or SLURM_ARRAY_TASK_ID (Slurm, from SLURM_ARRAY_TASK_MIN); without it, the whole file")
	}
	return v
}

// check refuses plan flags that cannot apply.
func (v *planFlagValues) check(name string, set map[string]bool, loaded *loadedPlan) error {
	switch {
	case name == "plan":
		if *v.parts < 1 || *v.parts > format.MaxParts {
			return usagef("--parts %d: want 1 to %d", *v.parts, format.MaxParts)
		}
		for _, f := range unplannable {
			if set[f] {
				return usagef("--%s cannot be planned: sequential guidance and measured allocation run the model as compressed so far, in one process (give --hessians from nwc calibrate instead)", f)
			}
		}
	case set["part"] && loaded == nil:
		return usagef("--part needs --plan")
	}
	return nil
}

// A loadedPlan is the plan of nwc convert --plan and the part to convert
// (0: all).
type loadedPlan struct {
	plan *convert.Plan
	part int
}

// convertFromPlan checks that the command line holds only runtime flags,
// reads the plan and runs convert again with the plan's recorded options.
func convertFromPlan(fs *flag.FlagSet, in string, v *planFlagValues, stdout, stderr io.Writer) error {
	var runtime []string
	var bad []string
	fs.Visit(func(f *flag.Flag) {
		switch {
		case f.Name == "part":
		case runtimeFlags[f.Name]:
			runtime = append(runtime, "--"+f.Name+"="+f.Value.String())
		default:
			bad = append(bad, "--"+f.Name)
		}
	})
	if len(bad) > 0 {
		return usagef("%s: with --plan the options come from the plan (nwc plan records them); only -o, --part, --jobs, --quiet, --json and --force may be given", strings.Join(bad, " "))
	}
	raw, err := os.ReadFile(*v.plan)
	if err != nil {
		return err
	}
	p, err := convert.ParsePlan(raw)
	if err != nil {
		return fmt.Errorf("%s: %w", *v.plan, err)
	}
	for _, a := range p.Args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || runtimeFlags[name] || fs.Lookup(name) == nil {
			return fmt.Errorf("%s: %w: recorded option %q is not one nwc plan records", *v.plan, convert.ErrPlan, a)
		}
	}
	part, err := resolvePart(*v.part, p.Parts, os.Getenv)
	if err != nil {
		return err
	}
	args := append(append([]string{}, p.Args...), runtime...)
	if part > 0 {
		args = append(args, "--part="+format.FormatPart(part, p.Parts))
	}
	args = append(args, "--", in)
	return convertCmd("convert", args, stdout, stderr, &loadedPlan{plan: p, part: part})
}

// resolvePart turns a --part value into a part number in [1, n], or 0 for
// none. "auto" reads a job engine's task index from the environment:
// Kubernetes' JOB_COMPLETION_INDEX (0-based) when set, else Slurm's
// SLURM_ARRAY_TASK_ID counted from SLURM_ARRAY_TASK_MIN in steps of
// SLURM_ARRAY_TASK_STEP (so --array=0-3, 1-4 and 10-40:10 all work), whose
// SLURM_ARRAY_TASK_COUNT, when set, must be n.
func resolvePart(spec string, n int, getenv func(string) string) (int, error) {
	atoi := func(name, s string) (int, error) {
		v, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return 0, usagef("--part auto: %s=%q is not an integer", name, s)
		}
		return v, nil
	}
	var i int
	switch {
	case spec == "":
		return 0, nil
	case spec == "auto":
		switch {
		case getenv(envK8sIndex) != "":
			k, err := atoi(envK8sIndex, getenv(envK8sIndex))
			if err != nil {
				return 0, err
			}
			i = k + 1
		case getenv(envSlurmID) != "":
			id, err := atoi(envSlurmID, getenv(envSlurmID))
			if err != nil {
				return 0, err
			}
			lo, step := 0, 1
			if s := getenv(envSlurmMin); s != "" {
				if lo, err = atoi(envSlurmMin, s); err != nil {
					return 0, err
				}
			}
			if s := getenv(envSlurmStep); s != "" {
				if step, err = atoi(envSlurmStep, s); err != nil {
					return 0, err
				}
			}
			if step < 1 || (id-lo)%step != 0 {
				return 0, usagef("--part auto: %s=%d is not %d plus a multiple of %s=%d", envSlurmID, id, lo, envSlurmStep, step)
			}
			if s := getenv(envSlurmCount); s != "" {
				c, err := atoi(envSlurmCount, s)
				if err != nil {
					return 0, err
				}
				if c != n {
					return 0, usagef("--part auto: the job array has %s=%d tasks, the plan %d parts", envSlurmCount, c, n)
				}
			}
			i = (id-lo)/step + 1
		default:
			return 0, usagef("--part auto: neither %s (Kubernetes Indexed Job) nor %s (Slurm job array) is set", envK8sIndex, envSlurmID)
		}
	default:
		a, b, found := strings.Cut(spec, "/")
		var err error
		if i, err = strconv.Atoi(a); err != nil {
			return 0, usagef("--part %q: want I/N, I or auto", spec)
		}
		if found {
			m, err := strconv.Atoi(b)
			if err != nil {
				return 0, usagef("--part %q: want I/N, I or auto", spec)
			}
			if m != n {
				return 0, usagef("--part %s: the plan has %d parts", spec, n)
			}
		}
	}
	if i < 1 || i > n {
		return 0, usagef("--part %s: part %d outside 1 … %d (parts count from 1)", spec, i, n)
	}
	return i, nil
}

// output returns the file a planned conversion writes: out itself for the
// whole file, else the part's file in the directory out (created).
func (l *loadedPlan) output(out string) (string, error) {
	if l.part == 0 {
		return out, nil
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return "", err
	}
	return filepath.Join(out, format.PartName(l.part, l.plan.Parts)), nil
}

// convert writes the planned file or part and, for a part, the set's
// index beside it: every part writes the same bytes, atomically, so parts
// finishing at once on a shared volume do not tear it.
func (l *loadedPlan) convert(ctx context.Context, src safetensors.Source, target string, opts *convert.Options) (*convert.Stats, error) {
	st, err := convert.ToNWCPlanned(ctx, src, target, opts, l.plan, l.part)
	if err != nil || l.part == 0 {
		return st, err
	}
	b, err := l.plan.ShardIndex(opts.Writer.PlainIndex).Marshal()
	if err != nil {
		return nil, err
	}
	err = atomicfile.WriteFile(filepath.Join(filepath.Dir(target), format.ShardIndexName), func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
	return st, err
}

// planArgs lists the flags given to nwc plan that decide what is written,
// in a canonical order, as the plan records them.
func planArgs(fs *flag.FlagSet) []string {
	var args []string
	fs.Visit(func(f *flag.Flag) {
		if runtimeFlags[f.Name] {
			return
		}
		if m, ok := f.Value.(*multiFlag); ok {
			for _, v := range *m {
				args = append(args, "--"+f.Name+"="+v)
			}
			return
		}
		args = append(args, "--"+f.Name+"="+f.Value.String())
	})
	return args
}

// makePlan runs nwc plan's work once the options are built.
func makePlan(ctx context.Context, src safetensors.Source, target string, v *planFlagValues, args []string, opts *convert.Options, asJSON bool, stdout io.Writer) error {
	p, err := convert.MakePlan(ctx, src, *v.parts, opts)
	if err != nil {
		return err
	}
	p.Args = args
	raw, err := p.Marshal()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(target, func(w io.Writer) error {
		_, err := w.Write(raw)
		return err
	}); err != nil {
		return err
	}
	weights := make([]uint64, p.Parts)
	tensors := make([]int, p.Parts)
	for _, t := range p.Tensors {
		weights[t.Part-1] += t.Elements
		tensors[t.Part-1]++
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{
			"output": target, "plan": p.Hash(), "parts": p.Parts, "tensors": len(p.Tensors),
			"part_tensors": tensors, "part_weights": weights, "model_bits": p.ModelBits,
		})
	}
	fmt.Fprintf(stdout, "%s: %d tensors in %d parts (weights per part:", target, len(p.Tensors), p.Parts)
	for _, w := range weights {
		fmt.Fprintf(stdout, " %d", w)
	}
	fmt.Fprintf(stdout, ")")
	if p.ModelBits > 0 {
		fmt.Fprintf(stdout, ", predicted %.4f bits per weight", p.ModelBits)
	}
	fmt.Fprintf(stdout, ", plan %.12s\n", p.Hash())
	return nil
}

func runPlan(args []string, stdout, stderr io.Writer) error {
	return convertCmd("plan", args, stdout, stderr, nil)
}

// runMerge joins a sharded .nwc's parts into one file.
func runMerge(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("merge", stderr)
	out := fs.String("o", "", "output .nwc `file` (required)")
	force := fs.Bool("force", false, "replace OUT if it exists")
	quiet := fs.Bool("quiet", false, "no progress line on stderr")
	asJSON := fs.Bool("json", false, "print a JSON summary")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *out == "" {
		return usagef("want one sharded .nwc (its %s or the directory holding it) and -o OUT.nwc", format.ShardIndexName)
	}
	r, err := reader.Open(pos[0], nil)
	if err != nil {
		return explainNWCErr(pos[0], "merge", err)
	}
	defer r.Close()
	if r.Parts() == nil {
		return usagef("%s is one .nwc file, not a sharded set: nothing to merge", pos[0])
	}
	target, err := checkOutput(*out, "a .nwc file", *force, append(r.Parts(), pos[0])...)
	if err != nil {
		return err
	}
	reportLeftovers(stderr, "merge", target)
	ctx := commandContext()
	pl := newProgress(stderr, *quiet)
	pl.Start("merge", len(r.Tensors()), "tensors", 0)
	st, err := convert.Merge(ctx, r.Reader, target, func(done, _ int) { pl.Set(done, 0) })
	pl.Finish()
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{
			"output": *out, "parts": st.Parts, "tensors": st.Tensors, "output_bytes": st.OutBytes,
		})
	}
	fmt.Fprintf(stdout, "%s: %d tensors from %d parts, %d bytes\n", *out, st.Tensors, st.Parts, st.OutBytes)
	return nil
}
