package neural_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwcodec/nwc/codec/mlp"
	"github.com/nwcodec/nwc/reader"
)

// TestGoldenEveryKernel decodes testdata/golden.nwc with every decoder MLP
// kernel this machine has (the AVX2 assembly and the pure-Go fallback; on
// arm64 the fallback alone, see scripts/arm64-check.sh) and checks each
// gives the pinned SHA-256.
func TestGoldenEveryKernel(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "golden.nwc"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile(filepath.Join("testdata", "golden.sha256"))
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, k := range []string{"generic", "avx2"} {
		prev, err := mlp.SetKernel(k)
		if err != nil {
			t.Logf("kernel %s: %v", k, err)
			continue
		}
		ran++
		r, err := reader.NewReader(bytes.NewReader(b), int64(len(b)), nil)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		for _, tt := range r.Tensors() {
			out, err := tt.Bytes()
			if err != nil {
				t.Fatal(err)
			}
			h.Write(out)
		}
		mlp.SetKernel(prev)
		if got := hex.EncodeToString(h.Sum(nil)); got != strings.TrimSpace(string(want)) {
			t.Errorf("kernel %s: decoded SHA-256 %s, want %s", k, got, strings.TrimSpace(string(want)))
		}
	}
	if ran == 0 {
		t.Fatal("no kernel ran")
	}
}
