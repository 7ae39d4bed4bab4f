package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestCheckOutput(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	os.WriteFile(p("in"), []byte("input"), 0o644)
	os.WriteFile(p("other"), []byte("other"), 0o644)
	os.Symlink("in", p("link"))
	os.Symlink("link", p("link2"))
	os.Symlink("missing", p("dangling"))
	os.Link(p("in"), p("hard"))
	os.Mkdir(p("dir"), 0o755)
	syscall.Mkfifo(p("fifo"), 0o644)
	tests := []struct {
		out  string
		want error
	}{
		{"new", nil},
		{"other", nil},
		{"dangling", nil},
		{"in", ErrSameFile},
		{"link", ErrSameFile},
		{"link2", ErrSameFile},
		{"hard", ErrSameFile},
		{"dir", ErrNotRegular},
		{"fifo", ErrNotRegular},
	}
	for _, tt := range tests {
		if err := CheckOutput(p(tt.out), p("in"), p("absent")); !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%s: %v, want %v", tt.out, err, tt.want)
		}
	}
}

// TestCreateFollowsLinksRefusesSpecial: Create writes through a symbolic
// link, keeping it, and never replaces a directory or fifo.
func TestCreateFollowsLinksRefusesSpecial(t *testing.T) {
	dir := t.TempDir()
	p := func(n string) string { return filepath.Join(dir, n) }
	os.WriteFile(p("real"), []byte("old"), 0o644)
	os.Symlink("real", p("link"))
	f, err := Create(p("link"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("new")
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(p("link")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("link replaced: %v %v", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(p("real")); string(b) != "new" {
		t.Errorf("target holds %q", b)
	}
	os.Mkdir(p("dir"), 0o755)
	syscall.Mkfifo(p("fifo"), 0o644)
	for _, n := range []string{"dir", "fifo"} {
		if _, err := Create(p(n)); !errors.Is(err, ErrNotRegular) {
			t.Errorf("Create(%s): %v, want ErrNotRegular", n, err)
		}
	}
	// A directory appearing between Create and Commit is not replaced.
	f, err = Create(p("late"))
	if err != nil {
		t.Fatal(err)
	}
	os.Mkdir(p("late"), 0o755)
	if err := f.Commit(); !errors.Is(err, ErrNotRegular) {
		t.Errorf("Commit over a new directory: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if len(e.Name()) > 0 && e.Name()[0] == '.' {
			t.Errorf("left %s behind", e.Name())
		}
	}
}
