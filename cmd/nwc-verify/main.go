// Command nwc-verify checks .nwc files: structure, bounds, checksums and
// zero padding, and with --deep it also decodes every tensor. A FILE may
// be a sharded .nwc (its model.nwc.index.json or the directory holding
// it): then every part must be present, hold the tensors the index maps
// to it and no other, come from the same plan, and verify.
//
// Usage:
//
//	nwc-verify [--deep] [--json] [--quiet] FILE...
//
// A FILE that is an http or https URL is read through range requests.
//
// Exit status: 0 when every file is valid, 1 when any is invalid (the
// message names the tensor or offset and what is wrong), 2 on a usage or
// I/O error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/internal/progress"
	"github.com/nwcodec/nwc/internal/sniff"
	"github.com/nwcodec/nwc/reader"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// result is one file's verdict, as printed by --json.
type result struct {
	File     string   `json:"file"`
	Valid    bool     `json:"valid"`
	Class    string   `json:"class,omitempty"` // format, checksum, unsupported, limit, io
	Problems []string `json:"problems,omitempty"`
	Tensors  int      `json:"tensors"`
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("nwc-verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	deep := fs.Bool("deep", false, "also decode every tensor")
	asJSON := fs.Bool("json", false, "print one JSON object per file")
	quiet := fs.Bool("quiet", false, "no progress line on stderr (--deep)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: nwc-verify [--deep] [--json] [--quiet] FILE...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	status := 0
	pl := newProgress(stderr, *quiet)
	enc := json.NewEncoder(stdout)
	for _, path := range fs.Args() {
		res := verify(path, *deep, pl)
		switch {
		case res.Class == "io":
			status = 2
		case !res.Valid && status == 0:
			status = 1
		}
		if *asJSON {
			enc.Encode(res)
			continue
		}
		if res.Valid {
			fmt.Fprintf(stdout, "%s: ok (%d tensors)\n", path, res.Tensors)
			continue
		}
		for _, p := range res.Problems {
			fmt.Fprintf(stdout, "%s: %s\n", path, p)
		}
	}
	return status
}

// open opens a local file, or an http or https URL through range requests.
func open(path string) (*reader.Reader, func() error, error) {
	if reader.IsURL(path) {
		u, err := reader.OpenURL(context.Background(), path, nil)
		if err != nil {
			return nil, nil, err
		}
		return u.Reader, u.Close, nil
	}
	rc, err := reader.Open(path, nil)
	if err != nil {
		return nil, nil, err
	}
	return rc.Reader, rc.Close, nil
}

func verify(path string, deep bool, pl *progress.Line) result {
	res := result{File: path}
	r, closeR, err := open(path)
	if err == nil {
		defer closeR()
		res.Tensors = len(r.Tensors())
		err = r.Verify(context.Background(), nil)
		if deep {
			err = errors.Join(append(unjoin(err), unjoin(decodeAll(r, pl))...)...)
		}
	}
	if err == nil {
		res.Valid = true
		return res
	}
	res.Class = format.Class(err)
	if res.Class == "" {
		res.Class = "io"
	}
	// Say what a file of another type is rather than which .nwc field its
	// bytes fail.
	if k, serr := sniff.File(path); res.Class == "format" && serr == nil && k != sniff.Unknown && k != sniff.NWC {
		res.Problems = []string{fmt.Sprintf("not a .nwc file but %s", k)}
		return res
	}
	// errors.Join from Verify: report each problem on its own line.
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			res.Problems = append(res.Problems, e.Error())
		}
	} else {
		res.Problems = []string{err.Error()}
	}
	return res
}
