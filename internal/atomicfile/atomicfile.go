// Package atomicfile writes a file so that it appears under its name only
// when complete: data goes to a temporary file in the same directory that
// is renamed over the target on Commit and removed on Abort.
//
// The temporary file is named ".NAME.tmp-PID-RANDOM", PID being the
// writing process's id, so that a file left behind by a killed process
// can be told from one another process is still writing (Leftovers).
package atomicfile

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// ErrDone is returned by Commit after Commit or Abort.
var ErrDone = errors.New("atomicfile: already committed or aborted")

// BeforeRename, when set, is called by Commit with the temporary file's
// name after the file is synced and closed and just before the context
// is checked a last time and the file renamed. It exists for tests that
// stop a process at that point (cmd/nwc's NWC_TEST_PAUSE); programs leave
// it nil.
var BeforeRename func(tmp string)

// A File is a pending file. Write to its *os.File.
type File struct {
	*os.File
	path string
	ctx  context.Context
	done bool
}

// pending holds the temporary files of this process not yet committed or
// aborted, for RemovePending.
var pending struct {
	sync.Mutex
	names map[string]bool
}

func track(name string, on bool) {
	pending.Lock()
	defer pending.Unlock()
	if pending.names == nil {
		pending.names = map[string]bool{}
	}
	if on {
		pending.names[name] = true
	} else {
		delete(pending.names, name)
	}
}

// RemovePending removes every temporary file of this process that is
// neither committed nor aborted and returns their names. A program that
// must exit at once (a second interrupt) calls it so as to leave nothing
// behind; the Files concerned must not be used afterwards.
func RemovePending() []string {
	pending.Lock()
	defer pending.Unlock()
	var removed []string
	for name := range pending.names {
		if os.Remove(name) == nil {
			removed = append(removed, name)
		}
		delete(pending.names, name)
	}
	return removed
}

// Create starts a file that will be called path. A symbolic link at path
// is followed: the file it names is replaced and the link kept. An
// existing directory, device, socket or fifo at path is refused with
// ErrNotRegular, as the rename would replace it.
func Create(path string) (*File, error) {
	return CreateContext(context.Background(), path)
}

// CreateContext is Create for a file whose Commit fails with ctx's error,
// removing the temporary file, when ctx is done by the time the data is
// on disk: an interrupt that arrives while a large file is being synced
// still leaves the target untouched.
func CreateContext(ctx context.Context, path string) (*File, error) {
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
	f, err := os.CreateTemp(dir, fmt.Sprintf("%s%d-*", tempPrefix(base), os.Getpid()))
	if err != nil {
		// Name the file asked for, not the temporary one.
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, &fs.PathError{Op: "create", Path: path, Err: err}
	}
	track(f.Name(), true)
	return &File{File: f, path: path, ctx: ctx}, nil
}

// tempPrefix starts the name of every temporary file for base.
func tempPrefix(base string) string { return "." + base + ".tmp-" }

// Commit syncs and closes the file and renames it to its target. On error
// the temporary file is removed and the target is untouched.
func (f *File) Commit() error {
	if f.done {
		return ErrDone
	}
	f.done = true
	defer track(f.Name(), false)
	err := f.Sync()
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), 0o644)
	}
	if err == nil && BeforeRename != nil {
		BeforeRename(f.Name())
	}
	if err == nil {
		err = f.ctx.Err()
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
	defer track(f.Name(), false)
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
