package neural_test

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/nwcodec/nwc/codec/neural"
)

// TestFormatDocConstants checks that FORMAT.md §7.7 states the constants
// this package uses: the step multipliers' bit patterns and the size and
// SHA-256 of the built-in blob, which implementations are checked against.
func TestFormatDocConstants(t *testing.T) {
	doc, err := os.ReadFile("../../FORMAT.md")
	if err != nil {
		t.Fatal(err)
	}
	def, err := neural.Default()
	if err != nil {
		t.Fatal(err)
	}
	sum := def.BlobSHA256()
	want := []string{
		fmt.Sprintf("%d bytes with SHA-256 `%x`", len(def.Blob()), sum),
	}
	for q := range neural.NumLevels {
		want = append(want, fmt.Sprintf("%#08x", math.Float32bits(neural.StepMultiplier(q))))
	}
	text := strings.Join(strings.Fields(string(doc)), " ") // line breaks fall anywhere
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("FORMAT.md does not state %q", w)
		}
	}
}
