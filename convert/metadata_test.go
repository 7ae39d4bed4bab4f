package convert_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/safetensors"
)

// TestCheckpointMetadata: shard metadata is kept per shard and promoted
// only where every shard agrees; companion files are listed, and stored
// whole only when they are text under the size cap.
func TestCheckpointMetadata(t *testing.T) {
	dir := t.TempDir()
	shardMD := []map[string]string{{"format": "pt", "part": "1"}, {"format": "pt", "part": "2"}}
	for i, name := range []string{"a.safetensors", "b.safetensors"} {
		h := &safetensors.Header{Metadata: shardMD[i], Tensors: []safetensors.TensorInfo{{Name: name, DType: safetensors.F32, Shape: []int64{2}}}}
		if err := safetensors.WriteFile(filepath.Join(dir, name), h, func(string) ([]byte, error) { return make([]byte, 8), nil }); err != nil {
			t.Fatal(err)
		}
	}
	big := bytes.Repeat([]byte("v"), format.MaxStoredFileBytes+1)
	files := map[string][]byte{
		"model.safetensors.index.json": []byte(`{"metadata": {"total_size": 16, "format": "index"}, "weight_map": {"a.safetensors": "a.safetensors", "b.safetensors": "b.safetensors"}}`),
		"config.json":                  []byte(`{"hidden_size": 8}`),
		"tokenizer.json":               big,
		"merges.txt":                   big[:format.MaxStoredFileBytes],
		"tokenizer.model":              {0xff, 0xfe},
		"unrelated.json":               []byte(`{}`),
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src, err := safetensors.OpenPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	out := filepath.Join(t.TempDir(), "m.nwc")
	if _, err := convert.ToNWC(context.Background(), src, out, &convert.Options{CheckpointDir: dir}); err != nil {
		t.Fatal(err)
	}
	r, err := reader.Open(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	md := r.Metadata()
	listing := md[format.MetaFiles]
	delete(md, format.MetaFiles)
	want := map[string]string{
		"total_size":                          "16",
		"format":                              "index", // the index's value wins over the shards'
		format.MetaShardMetadata:              `{"a.safetensors":{"format":"pt","part":"1"},"b.safetensors":{"format":"pt","part":"2"}}`,
		format.MetaFilePrefix + "config.json": `{"hidden_size": 8}`,
		format.MetaFilePrefix + "merges.txt":  string(big[:format.MaxStoredFileBytes]),
	}
	if d := cmp.Diff(want, md); d != "" {
		t.Errorf("metadata (-want +got):\n%s", d)
	}
	type entry struct {
		Name   string `json:"name"`
		Bytes  int64  `json:"bytes"`
		SHA256 string `json:"sha256"`
		Stored bool   `json:"stored"`
	}
	var got []entry
	if err := json.Unmarshal([]byte(listing), &got); err != nil {
		t.Fatal(err)
	}
	var wantList []entry
	for _, name := range []string{"config.json", "tokenizer.json", "tokenizer.model", "merges.txt"} {
		sum := sha256.Sum256(files[name])
		wantList = append(wantList, entry{name, int64(len(files[name])), hex.EncodeToString(sum[:]), name == "config.json" || name == "merges.txt"})
	}
	if d := cmp.Diff(wantList, got); d != "" {
		t.Errorf("%s (-want +got):\n%s", format.MetaFiles, d)
	}

	// Without CheckpointDir only the checkpoint's own metadata is kept.
	if _, err := convert.ToNWC(context.Background(), src, out, nil); err != nil {
		t.Fatal(err)
	}
	r2, err := reader.Open(out, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	if _, ok := r2.Metadata()[format.MetaFiles]; ok {
		t.Error("companion files recorded without CheckpointDir")
	}
	if r2.Metadata()["total_size"] != "16" {
		t.Errorf("metadata %v", r2.Metadata())
	}
}
