package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwcodec/nwc/codec/neural"
	"github.com/nwcodec/nwc/internal/shareddata"
)

// TestTrain runs a short training on stories260K and checks the codec
// file, the CSV curve, and that the same seed writes the same file.
func TestTrain(t *testing.T) {
	in := shareddata.Path(t, "stories260K", "stories260K.safetensors")
	dir := t.TempDir()
	train := func(name string) []byte {
		out := filepath.Join(dir, name+".nwcc")
		csv := filepath.Join(dir, name+".csv")
		var stdout, stderr bytes.Buffer
		code := run([]string{"train", in, "-o", out, "--steps", "40", "--batch", "32", "--width", "8", "--seed", "3", "--csv", csv}, &stdout, &stderr)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		if !strings.Contains(stdout.String(), "held-out loss") {
			t.Errorf("no progress printed: %q", stdout.String())
		}
		rows, err := os.ReadFile(csv)
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(string(rows), "\n"); n != 21 {
			t.Errorf("CSV has %d lines, want a header and 20 evaluations", n)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		c, err := neural.ParseCodec(b)
		if err != nil {
			t.Fatal(err)
		}
		if c.Config.Width != 8 || !strings.Contains(c.Info, "--seed 3") {
			t.Errorf("config %+v, info %q", c.Config, c.Info)
		}
		return b
	}
	if a, b := train("a"), train("b"); !bytes.Equal(a, b) {
		// The info line names the output file, so compare the codecs.
		ca, _ := neural.ParseCodec(a)
		cb, _ := neural.ParseCodec(b)
		if !bytes.Equal(ca.Blob(), cb.Blob()) {
			t.Error("the same seed trained different decoders")
		}
	}
	var stderr bytes.Buffer
	if code := run([]string{"train", in}, &bytes.Buffer{}, &stderr); code != 2 {
		t.Errorf("missing -o: exit %d, want 2", code)
	}
}
