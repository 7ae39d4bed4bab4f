package writer

import (
	"context"

	"github.com/nwcodec/nwc/internal/atomicfile"
)

// A File writes a .nwc file to a path atomically: the data goes to a
// temporary file in the same directory, renamed over the target only when
// Close succeeds. A failed or abandoned conversion never leaves a partial
// file under the target name.
type File struct {
	*Writer
	f *atomicfile.File
}

// Create starts writing the file at path.
func Create(path string, opts *Options) (*File, error) {
	return CreateContext(context.Background(), path, opts)
}

// CreateContext is Create for a file whose Close fails, leaving the
// target untouched, when ctx is done by the time the file is written and
// synced: the last chance to honour an interrupt before the rename.
func CreateContext(ctx context.Context, path string, opts *Options) (*File, error) {
	f, err := atomicfile.CreateContext(ctx, path)
	if err != nil {
		return nil, err
	}
	w, err := New(f, opts)
	if err != nil {
		f.Abort()
		return nil, err
	}
	return &File{Writer: w, f: f}, nil
}

// Close finishes the file and renames it to its target path. On any error
// the temporary file is removed and the target is untouched.
func (f *File) Close() error {
	if err := f.Writer.Close(); err != nil {
		f.f.Abort()
		return err
	}
	return f.f.Commit()
}

// Abort discards the file. It is a no-op after Close, so it can be
// deferred.
func (f *File) Abort() error {
	f.Writer.closed = true
	return f.f.Abort()
}
