package convert

import (
	"testing"

	"github.com/nwcodec/nwc/internal/shareddata"
	"github.com/nwcodec/nwc/llama"
	"github.com/nwcodec/nwc/tokenizer"
)

// stories260K returns the path of the stories260K checkpoint and the dev
// text's stories tokenized with its tokenizer: the model and calibration
// text of the package's calibrated tests.
func stories260K(t *testing.T) (string, [][]int) {
	t.Helper()
	in := shareddata.Path(t, "stories260K", "stories260K.safetensors")
	tok, err := tokenizer.Load(shareddata.Path(t, "stories260K", "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	docs, err := llama.LoadDocs(shareddata.Path(t, "text", "tinystories-dev.txt"), tok)
	if err != nil {
		t.Fatal(err)
	}
	return in, docs
}

// Stories260K is stories260K for the external test package.
var Stories260K = stories260K
