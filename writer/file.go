package writer

import (
	"errors"
	"os"
	"path/filepath"
)

// A File writes a .nwc file to a path atomically: the data goes to a
// temporary file in the same directory, renamed over the target only when
// Close succeeds. A failed or abandoned conversion never leaves a partial
// file under the target name.
type File struct {
	*Writer
	f    *os.File
	path string
	done bool
}

// Create starts writing the file at path.
func Create(path string, opts *Options) (*File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, err
	}
	w, err := New(f, opts)
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return &File{Writer: w, f: f, path: path}, nil
}

// Close finishes the file, syncs it and renames it to its target path. On
// any error the temporary file is removed and the target is untouched.
func (f *File) Close() error {
	if f.done {
		return ErrClosed
	}
	f.done = true
	err := f.Writer.Close()
	if err == nil {
		err = f.f.Sync()
	}
	if cerr := f.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.f.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(f.f.Name(), f.path)
	}
	if err != nil {
		os.Remove(f.f.Name())
	}
	return err
}

// Abort discards the file. It is a no-op after Close, so it can be
// deferred.
func (f *File) Abort() error {
	if f.done {
		return nil
	}
	f.done = true
	f.Writer.closed = true
	return errors.Join(f.f.Close(), os.Remove(f.f.Name()))
}
