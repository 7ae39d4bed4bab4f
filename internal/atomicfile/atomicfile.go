// Package atomicfile writes a file so that it appears under its name only
// when complete: data goes to a temporary file in the same directory that
// is renamed over the target on Commit and removed on Abort.
package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
)

// ErrDone is returned by Commit after Commit or Abort.
var ErrDone = errors.New("atomicfile: already committed or aborted")

// A File is a pending file. Write to its *os.File.
type File struct {
	*os.File
	path string
	done bool
}

// Create starts a file that will be called path.
func Create(path string) (*File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, err
	}
	return &File{File: f, path: path}, nil
}

// Commit syncs and closes the file and renames it to its target. On error
// the temporary file is removed and the target is untouched.
func (f *File) Commit() error {
	if f.done {
		return ErrDone
	}
	f.done = true
	err := f.Sync()
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.Name(), f.path)
	}
	if err != nil {
		os.Remove(f.Name())
	}
	return err
}

// Abort discards the file. It is a no-op after Commit, so it can be
// deferred.
func (f *File) Abort() error {
	if f.done {
		return nil
	}
	f.done = true
	return errors.Join(f.File.Close(), os.Remove(f.Name()))
}
