package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Errors of CheckOutput and Create, for errors.Is.
var (
	// ErrSameFile reports an output that is one of the inputs, directly or
	// through a symbolic or hard link: writing it would destroy the input.
	ErrSameFile = errors.New("output is an input file")
	// ErrNotRegular reports an output path naming an existing directory,
	// device, socket or fifo, which a renamed temporary file would replace.
	ErrNotRegular = errors.New("output is not a regular file")
)

// Target returns the path a write to path lands on: path itself, or for a
// symbolic link the file it points to, so that the link survives and the
// file it names is replaced. A dangling link resolves to its (missing)
// target, which is then created.
func Target(path string) (string, error) {
	for range 64 {
		fi, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) {
			return path, nil
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return path, nil
		}
		dest, err := os.Readlink(path)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(dest) {
			dest = filepath.Join(filepath.Dir(path), dest)
		}
		path = dest
	}
	return "", &fs.PathError{Op: "resolve", Path: path, Err: errors.New("too many levels of symbolic links")}
}

// CheckOutput reports whether out may be written by Create without harm:
// it fails with ErrNotRegular when out (after following symbolic links)
// exists but is not a regular file, and with ErrSameFile when it is the
// same file as any of inputs (compared with os.SameFile, so links and
// different spellings of one path are caught). Inputs that do not exist
// are ignored. It does not refuse an existing regular file; whether to
// overwrite one is the caller's policy.
func CheckOutput(out string, inputs ...string) error {
	target, err := Target(out)
	if err != nil {
		return err
	}
	fi, err := os.Stat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := regular(out, fi); err != nil {
		return err
	}
	for _, in := range inputs {
		ii, err := os.Stat(in)
		if err != nil {
			continue
		}
		if os.SameFile(fi, ii) {
			if in == out {
				return fmt.Errorf("%s is one of the input files: %w", out, ErrSameFile)
			}
			return fmt.Errorf("%s is the same file as input %s: %w", out, in, ErrSameFile)
		}
	}
	return nil
}

// regular refuses anything a rename must not replace.
func regular(name string, fi fs.FileInfo) error {
	if fi.Mode().IsRegular() {
		return nil
	}
	what := "not a regular file"
	switch m := fi.Mode(); {
	case m.IsDir():
		what = "a directory"
	case m&fs.ModeDevice != 0:
		what = "a device"
	case m&fs.ModeNamedPipe != 0:
		what = "a fifo"
	case m&fs.ModeSocket != 0:
		what = "a socket"
	}
	return fmt.Errorf("%s: %s, not a regular file; give a file path: %w", name, what, ErrNotRegular)
}

// checkTarget refuses a non-regular existing target.
func checkTarget(name, target string) error {
	fi, err := os.Stat(target)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return regular(name, fi)
}
