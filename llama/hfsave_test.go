package llama

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nwcodec/nwc/safetensors"
)

// TestSaveHF writes models in Hugging Face layout and loads them back:
// the weights come back bit for bit, the file holds what the test's own
// transcription of the Hugging Face conversion (hfSource) makes, and the
// configuration survives config.json.
func TestSaveHF(t *testing.T) {
	untied := tinyConfig
	untied.TiedEmbeddings = false
	for _, tc := range []struct {
		name string
		cfg  Config
		opt  HFSaveOptions
		emb  string
	}{
		{"tied", tinyConfig, HFSaveOptions{}, hfEmbedding},
		{"tied-lm-head", tinyConfig, HFSaveOptions{LMHeadOnly: true}, hfOutput},
		{"untied", untied, HFSaveOptions{}, hfEmbedding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := randomSource(tc.cfg, 40)
			m, err := New(tc.cfg, src)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if err := SaveHF(dir, m, tc.opt); err != nil {
				t.Fatal(err)
			}
			got, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			sameWeights(t, "reloaded", got, m)
			if c := got.CheckpointName(NameEmbedding); c != tc.emb {
				t.Errorf("embedding stored as %s, want %s", c, tc.emb)
			}
			f, err := safetensors.Open(filepath.Join(dir, HFWeightsFile))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			want := hfSource(tc.cfg, src)
			for _, name := range m.Names() {
				c := got.CheckpointName(name)
				d, _, err := SafetensorsSource{Src: f}.Tensor(c)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(d, want.data[hfName(name)]) {
					t.Errorf("%s differs from the Hugging Face conversion of %s", c, name)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, ConfigFile)); err != nil {
				t.Fatal(err)
			}
		})
	}
}
