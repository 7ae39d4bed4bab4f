package safetensors

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// addSeeds adds every testdata file matching pattern to the corpus.
func addSeeds(f *testing.F, pattern string) {
	paths, err := filepath.Glob(filepath.Join("testdata", pattern))
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seeds match testdata/%s: %v", pattern, err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// typed reports whether err matches one of the package's input sentinels.
func typed(err error) bool {
	return errors.Is(err, ErrFormat) || errors.Is(err, ErrUnsupported) || errors.Is(err, ErrTooLarge)
}

func FuzzReader(f *testing.F) {
	addSeeds(f, "*.safetensors")
	f.Fuzz(func(t *testing.T, in []byte) {
		file, err := parseBytes(in, &Options{MaxHeaderSize: 1 << 16, MaxRank: 8})
		if err != nil {
			if !typed(err) {
				t.Fatalf("error %v matches no sentinel", err)
			}
			return
		}
		if out := rewriteRaw(t, file); !bytes.Equal(out, in) {
			t.Fatalf("raw round trip\n got %q\nwant %q", out, in)
		}

		// The canonical writer must accept anything the reader accepts and
		// produce a file with the same content.
		var buf bytes.Buffer
		w, err := NewWriter(&buf, &Header{Metadata: file.Metadata(), Tensors: file.Tensors()})
		if err != nil {
			t.Fatalf("NewWriter rejects a header the reader accepted: %v", err)
		}
		for _, ti := range file.Tensors() {
			data, err := file.ReadTensor(ti.Name)
			if err != nil {
				t.Fatal(err)
			}
			if err := w.WriteTensor(ti.Name, data); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		again, err := parseBytes(buf.Bytes(), nil)
		if err != nil {
			t.Fatalf("canonical rewrite does not parse: %v", err)
		}
		if diff := cmp.Diff(file.Metadata(), again.Metadata()); diff != "" {
			t.Errorf("metadata changed (-orig +canonical):\n%s", diff)
		}
		opt := cmpopts.IgnoreFields(TensorInfo{}, "Offset")
		if diff := cmp.Diff(file.Tensors(), again.Tensors(), opt); diff != "" {
			t.Errorf("tensors changed (-orig +canonical):\n%s", diff)
		}
		if !bytes.Equal(buf.Bytes()[again.DataOffset():], in[file.DataOffset():]) {
			t.Error("data section changed")
		}
	})
}

func FuzzIndex(f *testing.F) {
	addSeeds(f, "*.json")
	f.Add([]byte(goodIndex))
	f.Fuzz(func(t *testing.T, in []byte) {
		meta, weights, err := parseIndex(in)
		if err != nil {
			if !typed(err) {
				t.Fatalf("error %v matches no sentinel", err)
			}
			return
		}
		seen := make(map[string]bool)
		for _, w := range weights {
			if seen[w.tensor] || !validShardName(w.shard) {
				t.Fatalf("accepted bad weight_map entry %+v", w)
			}
			seen[w.tensor] = true
		}
		meta2, weights2, err := parseIndex(in)
		if err != nil || !cmp.Equal(meta, meta2) || !cmp.Equal(weights, weights2, cmp.AllowUnexported(weight{})) {
			t.Fatalf("parseIndex is not deterministic: %v", err)
		}
	})
}
