package main

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/nwcodec/nwc/internal/ordered"
	"github.com/nwcodec/nwc/internal/progress"
	"github.com/nwcodec/nwc/reader"
)

// decodeAll decodes every tensor group by group on all cores, as
// reader.Verify(true) does tensor by tensor, holding a few groups instead of
// a whole tensor, and reports progress to pl. It returns one error per
// tensor that does not decode.
func decodeAll(r *reader.Reader, pl *progress.Line) error {
	var errs []error
	var total uint64
	for _, t := range r.Tensors() {
		total += t.NumElements()
	}
	pl.Start("verify --deep", len(r.Tensors()), "tensors", int64(total))
	defer pl.Finish()
	var done uint64
	for k, t := range r.Tensors() {
		size := func(i int64) int {
			e0, e1 := t.GroupElements(int(i))
			return int(e1-e0) * t.DType().Size()
		}
		err := ordered.Run(context.Background(), int64(t.NumGroups()), 0, size,
			func(i int64, buf []byte) error {
				return t.DecodeGroupInto(context.Background(), int(i), buf, t.DType())
			},
			func(i int64, buf []byte) error {
				done += uint64(len(buf) / t.DType().Size())
				pl.Set(k, int64(done))
				return nil
			})
		if err != nil {
			errs = append(errs, err)
		}
	}
	pl.Set(len(r.Tensors()), int64(done))
	return errors.Join(errs...)
}

// newProgress returns the progress line on stderr (so --json output on
// stdout stays clean), or nil with --quiet.
func newProgress(stderr io.Writer, quiet bool) *progress.Line {
	if quiet {
		return nil
	}
	f, ok := stderr.(*os.File)
	terminal := false
	if ok {
		fi, err := f.Stat()
		terminal = err == nil && fi.Mode()&os.ModeCharDevice != 0
	}
	return progress.New(stderr, terminal)
}

// unjoin lists the errors err joins (err alone if it joins none, nothing
// if nil), so that two joined lists make one.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
