package reader_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// outsideMain is a program in another module that writes a .nwc file and
// decodes it through the public API only.
const outsideMain = `package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/writer"
)

func main() {
	path := filepath.Join(os.Args[1], "m.nwc")
	f, err := writer.Create(path, nil)
	if err != nil {
		panic(err)
	}
	data := []byte{0x80, 0x3f, 0x00, 0x40, 0x40, 0x40, 0x80, 0xbf} // BF16 1 2 3 -1
	if err := f.WriteTensor(&codec.Tensor{Name: "w", DType: format.BF16, Shape: []uint64{2, 2}, Data: data}, codec.Lossless, nil); err != nil {
		panic(err)
	}
	if err := f.Close(); err != nil {
		panic(err)
	}
	r, err := reader.Open(path, nil)
	if err != nil {
		panic(err)
	}
	defer r.Close()
	t, err := r.Tensor("w")
	if err != nil {
		panic(err)
	}
	vals := make([]float32, t.NumElements())
	if err := t.Float32Into(context.Background(), vals); err != nil {
		panic(err)
	}
	fmt.Println(t.Shape(), vals)
}
`

// TestOutsideModule builds and runs a program in a throw-away module that
// requires this one through a replace directive, as a user's module
// would, offline: it fails if the module path, an internal import or a
// missing requirement kept other modules from using the reader and
// writer. It needs the go tool and this module's dependencies in the
// module cache (as building this module does); under CI=true their absence
// is a failure, elsewhere the test is skipped without the go tool.
func TestOutsideModule(t *testing.T) {
	ci := os.Getenv("CI") == "true"
	if testing.Short() && !ci {
		t.Skip("builds a program (skipped with -short outside CI)")
	}
	goTool, err := exec.LookPath(filepath.Join(runtime.GOROOT(), "bin", "go"))
	if err != nil {
		goTool, err = exec.LookPath("go")
	}
	if err != nil {
		if ci {
			t.Fatalf("CI=true but the go tool is not available: %v", err)
		}
		t.Skipf("no go tool: %v", err)
	}
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go \S+$`).Find(gomod)
	gosum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	mod := "module example.com/nwcuser\n\n" + string(goLine) + "\n\n" +
		"require github.com/nwcodec/nwc v0.0.0\n\n" +
		"replace github.com/nwcodec/nwc => " + root + "\n"
	for name, content := range map[string][]byte{"go.mod": []byte(mod), "go.sum": gosum, "main.go": []byte(outsideMain)} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := func(name string) string {
		out, err := exec.Command(goTool, "env", name).Output()
		if err != nil {
			t.Fatalf("go env %s: %v", name, err)
		}
		return strings.TrimSpace(string(out))
	}
	cmd := exec.Command(goTool, "run", ".", t.TempDir())
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local",
		"GOMODCACHE="+env("GOMODCACHE"), "GOCACHE="+env("GOCACHE"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go run in a module outside this one: %v\n%s", err, stderr.Bytes())
	}
	if got, want := strings.TrimSpace(string(out)), "[2 2] [1 2 3 -1]"; got != want {
		t.Fatalf("program printed %q, want %q", got, want)
	}
}
