package codec_test

import (
	"errors"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// TestReadersLinkNoEncoder checks the point of registering encoders and
// decoders apart: a program that only reads files (package reader, the
// nwc-verify tool) links no encoder, no training code, no LDLQ and no
// gonum.
func TestReadersLinkNoEncoder(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := exec.LookPath(goTool); err != nil {
			t.Skipf("no go tool to list dependencies with (not on PATH, nor at %s)", goTool)
		}
	}
	forbidden := []string{
		"gonum.org/",
		"github.com/nwcodec/nwc/ldlq",
		"github.com/nwcodec/nwc/codec/neural/nwcenc",
		"github.com/nwcodec/nwc/codec/neural/train",
		"github.com/nwcodec/nwc/codec/scalar/scalarenc",
		"github.com/nwcodec/nwc/convert",
	}
	for _, pkg := range []string{"github.com/nwcodec/nwc/reader", "github.com/nwcodec/nwc/cmd/nwc-verify"} {
		out, err := exec.Command(goTool, "list", "-deps", pkg).Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				t.Fatalf("go list -deps %s: %v\n%s", pkg, err, ee.Stderr)
			}
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		// The decoders must be there, or the check below proves nothing.
		for _, want := range []string{pkg, "github.com/nwcodec/nwc/codec/neural", "github.com/nwcodec/nwc/codec/scalar"} {
			if !slices.Contains(deps, want) {
				t.Errorf("go list -deps %s does not list %s", pkg, want)
			}
		}
		for _, d := range deps {
			for _, f := range forbidden {
				if d == f || strings.HasPrefix(d, f) && (strings.HasSuffix(f, "/") || strings.HasPrefix(d, f+"/")) {
					t.Errorf("%s depends on %s", pkg, d)
				}
			}
		}
	}
}
