// Command nwc converts safetensors checkpoints to .nwc files and back, and
// reports on .nwc files.
//
// Usage:
//
//	nwc convert IN -o OUT.nwc [--codec raw|lossless|ecsq|tcq|rtn|q4k|nwc] [--bits B] [--force] [--json]
//	nwc decode IN.nwc -o OUT.safetensors|OUT.gguf [--dtype orig|f32|f16|bf16] [--force] [--jobs N] [--quiet]
//	nwc info IN.nwc [--json]
//
// IN for convert is a .safetensors file, a model.safetensors.index.json, or
// a directory holding either. --bits without --codec selects nwc. An
// output that is an input, a directory or a device is refused, and an
// existing one is replaced only with --force. Exit status: 0 on success, 1
// when the input is invalid, 2 on a usage or I/O error, 130 after SIGINT
// and 143 after SIGTERM (the first stops the command and removes its
// unfinished output; a second exits at once).
//
// An OUT ending in .gguf gets a GGUF file for llama.cpp (a Llama model:
// llama.cpp's tensor names and llama.* metadata; --config gives the
// source's config.json when the .nwc metadata lacks it, --tokenizer a
// llama2.c tokenizer to embed, --alignment the data alignment, 32 by
// default). IN.nwc for decode and info may be an http or https URL: the file is read
// through range requests (the index first, then the tensors as decoded),
// and the requests and bytes fetched are reported on stderr.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/nwcodec/nwc/format"
)

type command struct {
	name  string
	usage string
	run   func(args []string, stdout, stderr io.Writer) error
}

var commands []command

func init() {
	commands = []command{
		{"convert", "convert IN -o OUT.nwc [--codec raw|lossless|ecsq|tcq|rtn|q4k|nwc] [--bits B] [--tensor-bits RE=B] [--keep RE] [--force] [--json] (--bits alone means --codec nwc) | convert IN --plan PLAN.json [--part I/N|auto] -o OUT.nwc|DIR", runConvert},
		{"plan", "plan IN -o PLAN.json --parts N [convert's options]: decide a conversion to run in parts (docs/distributed.md)", runPlan},
		{"merge", "merge DIR|model.nwc.index.json -o OUT.nwc [--force] [--quiet] [--json]: join a sharded .nwc's parts without re-encoding", runMerge},
		{"decode", "decode IN.nwc -o OUT.safetensors|OUT.gguf [--dtype orig|f32|f16|bf16] [--force] [--jobs N] [--quiet] [GGUF: --config config.json] [--tokenizer TOK] [--name NAME] [--alignment N]", runDecode},
		{"info", "info IN.nwc [--json]", runInfo},
		{"eval", "eval ppl --model FILE --tokenizer TOK --text FILE [--window N] [--json] | eval kl --model FILE --ref ORIG --tokenizer TOK --text FILE [--json] | eval generate --model FILE --tokenizer TOK [--prompt TEXT] [-n N]", runEval},
		{"calibrate", "calibrate --model FILE --tokenizer TOK --text FILE -o HESSIANS.safetensors [--max-tokens N] [--f64] [--json]", runCalibrate},
		{"train", "train IN... -o CODEC.nwcc [--lambda L] [--width W] [--blocks B] [--steps N] [--seed S] [--csv FILE]", runTrain},
		{"bench", "bench rd [--codecs ecsq,tcq,rtn,q4k,nwc] [--bits 2,3,4,5,6] [--json] [--plot rd.png] IN... | bench ppl --model F --tokenizer T --text F [--hessians H] [--bits LIST] [--json] | bench scale [--shapes LIST] [--codecs LIST] [--bits B] [--dir DIR] [--jobs N] [--json]", runBench},
	}
}

func main() {
	catchSignals(os.Stderr)
	installTestHooks()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError marks errors in the command line (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		printUsage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands {
		if c.name == args[0] {
			startCommand(c.name)
			err := c.run(args[1:], stdout, stderr)
			if s := interrupted(); s != nil {
				fmt.Fprintf(stderr, "nwc %s: %s\n", c.name, interruptedMessage(s, err))
				return signalStatus(s)
			}
			if err == nil {
				return 0
			}
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			fmt.Fprintf(stderr, "nwc %s: %v\n", c.name, err)
			return exitCode(err)
		}
	}
	fmt.Fprintf(stderr, "nwc: unknown command %q\n", args[0])
	printUsage(stderr)
	return 2
}

// exitCode maps an error to the exit status: 1 for invalid input, 2 for
// usage and I/O errors.
func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) {
		return 2
	}
	if format.Class(err) != "" || isSafetensorsInvalid(err) {
		return 1
	}
	return 2
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage:")
	names := make([]string, 0, len(commands))
	for _, c := range commands {
		names = append(names, "  nwc "+c.usage)
	}
	sort.Strings(names)
	fmt.Fprintln(w, strings.Join(names, "\n"))
}

// parse parses flags that may come before, between or after positional
// arguments, as users type them (`nwc convert in.safetensors -o out.nwc`).
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("nwc "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// isTerminal reports whether f is a character device, to decide whether to
// draw progress.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// writeJSON prints v as indented JSON, for lists of measurements.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// newTable returns a writer for right-aligned tab-separated columns.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
}
