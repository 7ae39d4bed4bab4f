package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// entries lists the names in dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

func TestCommit(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.bin")
	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("partial")); err != nil {
		t.Fatal(err)
	}
	// Until Commit, the target does not exist.
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("target exists before Commit: %v", err)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil || string(b) != "partial" {
		t.Fatalf("read %q, %v", b, err)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", st.Mode().Perm())
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("directory holds %v, want only the target", got)
	}
	if err := f.Commit(); !errors.Is(err, ErrDone) {
		t.Errorf("second Commit: %v, want ErrDone", err)
	}
	if err := f.Abort(); err != nil {
		t.Errorf("Abort after Commit: %v", err)
	}
}

func TestAbortKeepsTarget(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.bin")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("new"))
	if err := f.Abort(); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("target holds %q after Abort, want the old content", b)
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("directory holds %v after Abort, want only the target", got)
	}
	if err := f.Commit(); !errors.Is(err, ErrDone) {
		t.Errorf("Commit after Abort: %v, want ErrDone", err)
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.bin")
	if err := WriteFile(path, func(w io.Writer) error {
		_, err := w.Write([]byte("whole"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "whole" {
		t.Fatalf("read %q", b)
	}
	fail := errors.New("write failed")
	err := WriteFile(path, func(w io.Writer) error {
		w.Write([]byte("half"))
		return fail
	})
	if !errors.Is(err, fail) {
		t.Fatalf("got %v, want the write error", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "whole" {
		t.Errorf("a failed write changed the target to %q", b)
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("directory holds %v after a failed write, want only the target", got)
	}
}

func TestCreateInMissingDirectory(t *testing.T) {
	if _, err := Create(filepath.Join(t.TempDir(), "no", "such", "dir", "f")); err == nil {
		t.Fatal("Create in a missing directory succeeded")
	}
}
