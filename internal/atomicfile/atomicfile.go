// Package atomicfile writes a file so that it appears under its name only
// when complete: data goes to a temporary file in the same directory that
// is renamed over the target on Commit and removed on Abort.
package atomicfile

import (
	"errors"
	"io"
	"io/fs"
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

// Create starts a file that will be called path. A symbolic link at path
// is followed: the file it names is replaced and the link kept. An
// existing directory, device, socket or fifo at path is refused with
// ErrNotRegular, as the rename would replace it.
func Create(path string) (*File, error) {
	target, err := Target(path)
	if err != nil {
		return nil, err
	}
	if err := checkTarget(path, target); err != nil {
		return nil, err
	}
	path = target
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		// Name the file asked for, not the temporary one.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, &fs.PathError{Op: "create", Path: path, Err: err}
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
		// Something may have appeared at the target since Create.
		err = checkTarget(f.path, f.path)
	}
	if err == nil {
		if err = os.Rename(f.Name(), f.path); err != nil {
			err = &os.PathError{Op: "write", Path: f.path, Err: errors.Unwrap(err)}
		}
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

// WriteFile writes the file at path with write, atomically: if write (or
// committing) fails, the temporary file is removed, the target is
// untouched and the error is returned.
func WriteFile(path string, write func(w io.Writer) error) error {
	f, err := Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Abort()
		return err
	}
	return f.Commit()
}
