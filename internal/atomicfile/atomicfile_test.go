package atomicfile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// TestLeftovers tells the temporary files of a gone process, a running one
// and an older nwc apart, and never lists this process's own.
func TestLeftovers(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.bin")
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Skip("no true(1) to get the id of an exited process:", err)
	}
	for name, size := range map[string]int{
		fmt.Sprintf(".out.bin.tmp-%d-1", gone.Process.Pid): 3,
		fmt.Sprintf(".out.bin.tmp-%d-2", os.Getppid()):     5,
		".out.bin.tmp-123456789":                           7,
		".other.bin.tmp-1-1":                               11,
		".out.bin.tmp-x.tmp-1-1":                           13, // the temporary file of "out.bin.tmp-x"
	} {
		if err := os.WriteFile(filepath.Join(dir, name), make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	if !strings.Contains(filepath.Base(f.Name()), fmt.Sprintf(".tmp-%d-", os.Getpid())) {
		t.Errorf("temporary name %s lacks the process id", f.Name())
	}
	ls, err := Leftovers(path)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]Leftover{}
	for _, l := range ls {
		got[l.Size] = l
	}
	want := map[int64]Leftover{
		3: {Name: filepath.Join(dir, fmt.Sprintf(".out.bin.tmp-%d-1", gone.Process.Pid)), Size: 3, PID: gone.Process.Pid},
		5: {Name: filepath.Join(dir, fmt.Sprintf(".out.bin.tmp-%d-2", os.Getppid())), Size: 5, PID: os.Getppid(), Live: true},
		7: {Name: filepath.Join(dir, ".out.bin.tmp-123456789"), Size: 7},
	}
	if len(ls) != len(want) {
		t.Fatalf("Leftovers: %+v, want %+v", ls, want)
	}
	for size, w := range want {
		if got[size] != w {
			t.Errorf("Leftovers: %+v, want %+v", got[size], w)
		}
	}
}

// TestRemovePending removes the files in progress and only those.
func TestRemovePending(t *testing.T) {
	dir := t.TempDir()
	a, err := Create(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Create(filepath.Join(dir, "b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := RemovePending(); len(got) != 1 || got[0] != a.Name() {
		t.Errorf("RemovePending removed %v, want [%s]", got, a.Name())
	}
	if got := entries(t, dir); len(got) != 1 || got[0] != "b" {
		t.Errorf("directory holds %v, want only b", got)
	}
	a.Abort()
}

// TestCommitContext: a context done before the rename aborts the commit.
func TestCommitContext(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.bin")
	os.WriteFile(path, []byte("old"), 0o644)
	ctx, cancel := context.WithCancel(context.Background())
	f, err := CreateContext(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("new"))
	cancel()
	if err := f.Commit(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Commit: %v, want context.Canceled", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Errorf("target holds %q, want the old content", b)
	}
	if got := entries(t, dir); len(got) != 1 {
		t.Errorf("directory holds %v, want only the target", got)
	}
}

// TestStartWriteback: the writeback hint, over written ranges, empty ones
// and ones past the end, changes nothing of what Commit leaves.
func TestStartWriteback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out")
	f, err := Create(path)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte("nwc writeback "), 100_000)
	half := int64(len(want) / 2)
	if _, err := f.WriteAt(want[half:], half); err != nil {
		t.Fatal(err)
	}
	f.StartWriteback(half, int64(len(want))-half)
	if _, err := f.WriteAt(want[:half], 0); err != nil {
		t.Fatal(err)
	}
	f.StartWriteback(0, half)
	f.StartWriteback(0, 0)
	f.StartWriteback(int64(len(want)), 1<<30)
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("file differs from what was written")
	}
}
