package safetensors

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const (
	shard1 = "model-00001-of-00002.safetensors"
	shard2 = "model-00002-of-00002.safetensors"
)

// testShards are the shard files every sharded test directory holds.
var testShards = map[string]*Header{
	shard1: {Metadata: map[string]string{"format": "pt"}, Tensors: []TensorInfo{
		{Name: "b", DType: F32, Shape: []int64{2, 2}},
		{Name: "a", DType: U8, Shape: []int64{3}},
	}},
	shard2: {Metadata: map[string]string{"format": "pt"}, Tensors: []TensorInfo{
		{Name: "c", DType: F16, Shape: []int64{5}},
		{Name: "d", DType: I32, Shape: []int64{0}},
	}},
	"dup.safetensors": {Tensors: []TensorInfo{
		{Name: "a", DType: U8, Shape: []int64{3}},
		{Name: "z", DType: U8, Shape: []int64{1}},
	}},
}

const goodIndex = `{
  "metadata": {"total_size": 42, "note": "x\u00e9", "nested": {"k": [1, 2]}},
  "weight_map": {
    "a": "` + shard1 + `",
    "c": "` + shard2 + `",
    "b": "` + shard1 + `",
    "d": "` + shard2 + `"
  }
}
`

// shardedDir writes the test shards and the given index into a new
// directory and returns the index path.
func shardedDir(t *testing.T, index string) string {
	t.Helper()
	dir := t.TempDir()
	for name, h := range testShards {
		if err := WriteFile(filepath.Join(dir, name), h, func(n string) ([]byte, error) {
			ti, _ := lookup(h, n)
			size, _ := byteSize(ti.DType, ti.Shape)
			return pattern(n, size), nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "model.safetensors.index.json")
	if err := os.WriteFile(path, []byte(index), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestOpenIndex(t *testing.T) {
	path := shardedDir(t, goodIndex)
	s, err := OpenIndex(path)
	if err != nil {
		t.Fatal(err)
	}

	var names, shards []string
	for _, ti := range s.Tensors() {
		names = append(names, ti.Name)
		sh, _ := s.ShardOf(ti.Name)
		shards = append(shards, sh)
		data, err := s.ReadTensor(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, pattern(ti.Name, ti.Length)) {
			t.Errorf("tensor %q data differs", ti.Name)
		}
		r, err := s.Open(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := io.ReadAll(r); !bytes.Equal(got, data) {
			t.Errorf("Open(%q) reads different bytes than ReadTensor", ti.Name)
		}
	}
	if diff := cmp.Diff([]string{"b", "a", "c", "d"}, names); diff != "" {
		t.Errorf("tensor order (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{shard1, shard1, shard2, shard2}, shards); diff != "" {
		t.Errorf("shards (-want +got):\n%s", diff)
	}
	wantMeta := map[string]string{"total_size": "42", "note": "xé", "nested": `{"k":[1,2]}`}
	if diff := cmp.Diff(wantMeta, s.Metadata()); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{shard1, shard2}, s.Shards()); diff != "" {
		t.Errorf("Shards (-want +got):\n%s", diff)
	}
	if f, ok := s.Shard(shard2); !ok || f.Metadata()["format"] != "pt" || len(f.Tensors()) != 2 {
		t.Errorf("Shard(%s) = %v, %v", shard2, f, ok)
	}
	if _, ok := s.Shard("dup.safetensors"); ok {
		t.Error("Shard returned a file the index does not use")
	}
	if string(s.RawIndex()) != goodIndex {
		t.Error("RawIndex differs from the file")
	}
	if ti, ok := s.Tensor("c"); !ok || ti.DType != F16 || ti.Offset < 8 {
		t.Errorf("Tensor(c) = %+v, %v", ti, ok)
	}
	if _, err := s.ReadTensor("z"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadTensor(z) = %v, want fs.ErrNotExist", err)
	}
	if _, err := s.Open("z"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(z) = %v, want fs.ErrNotExist", err)
	}
	if _, ok := s.ShardOf("z"); ok {
		t.Error("ShardOf(z) found a shard")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReadTensor("a"); !errors.Is(err, os.ErrClosed) {
		t.Errorf("ReadTensor after Close = %v, want os.ErrClosed", err)
	}
}

func TestOpenIndexRejects(t *testing.T) {
	wm := func(entries string) string { return `{"weight_map":{` + entries + `}}` }
	all := `"a":"` + shard1 + `","b":"` + shard1 + `","c":"` + shard2 + `","d":"` + shard2 + `"`
	tests := []struct {
		name  string
		index string
		want  error
		msg   string
	}{
		{"parent dir shard", wm(`"a":"../` + shard1 + `"`), ErrFormat, "not a file name"},
		{"absolute shard", wm(`"a":"/etc/passwd"`), ErrFormat, "not a file name"},
		{"subdir shard", wm(`"a":"sub/x.safetensors"`), ErrFormat, "not a file name"},
		{"backslash shard", wm(`"a":"..\\x.safetensors"`), ErrFormat, "not a file name"},
		{"empty shard", wm(`"a":""`), ErrFormat, "not a file name"},
		{"dot shard", wm(`"a":"."`), ErrFormat, "not a file name"},
		{"missing shard file", wm(`"a":"model-00003.safetensors"`), fs.ErrNotExist, "model-00003"},
		{"listed tensor absent", wm(all + `,"e":"` + shard1 + `"`), ErrFormat, `"e" is missing`},
		{"shard tensor unlisted", wm(`"a":"` + shard1 + `","b":"` + shard1 + `","c":"` + shard2 + `"`), ErrFormat, `"d", which weight_map does not list`},
		{"tensor in wrong shard", wm(`"a":"` + shard2 + `","b":"` + shard1 + `","c":"` + shard2 + `","d":"` + shard2 + `"`), ErrFormat, "places it in"},
		{"tensor in two shards", wm(all + `,"z":"dup.safetensors"`), ErrFormat, `"a" is in shard`},
		{"duplicate weight_map key", wm(all + `,"a":"` + shard1 + `"`), ErrFormat, "duplicate"},
		{"no weight_map", `{"metadata":{}}`, ErrFormat, "no weight_map"},
		{"weight_map not object", `{"weight_map":[]}`, ErrFormat, "weight_map"},
		{"weight_map value number", wm(`"a":1`), ErrFormat, "not a string"},
		{"duplicate top-level key", `{"weight_map":{},"weight_map":{}}`, ErrFormat, "duplicate"},
		{"duplicate metadata key", `{"metadata":{"x":1,"x":2},"weight_map":{}}`, ErrFormat, "duplicate"},
		{"duplicate nested key", `{"metadata":{"x":[{"k":1,"k":2}]},"weight_map":{}}`, ErrFormat, "duplicate"},
		{"duplicate key in unknown field", `{"other":{"k":1,"k":2},"weight_map":{}}`, ErrFormat, "duplicate"},
		{"metadata not object", `{"metadata":3,"weight_map":{}}`, ErrFormat, "not an object"},
		{"trailing data", `{"weight_map":{}} {}`, ErrFormat, "after index"},
		{"invalid JSON", `{"weight_map":{"a":}}`, ErrFormat, "invalid"},
		{"truncated JSON", `{"weight_map":{"a":"x"`, ErrFormat, "truncated"},
		{"invalid UTF-8", "{\"weight_map\":{\"\xff\":\"x\"}}", ErrFormat, "UTF-8"},
		{"not an object", `[]`, ErrFormat, "index"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := OpenIndex(shardedDir(t, tt.index))
			if err == nil {
				s.Close()
				t.Fatal("opened successfully")
			}
			t.Log(err)
			if !errors.Is(err, tt.want) {
				t.Errorf("error %v does not match %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("error %q does not mention %q", err, tt.msg)
			}
		})
	}
}

func TestOpenIndexBadShard(t *testing.T) {
	path := shardedDir(t, wmGap)
	if err := os.WriteFile(filepath.Join(filepath.Dir(path), "gap.safetensors"), badFiles["gap"], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := OpenIndex(path)
	if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "gap.safetensors") {
		t.Errorf("OpenIndex with a corrupt shard = %v, want ErrFormat naming the shard", err)
	}
	if _, err := OpenIndexFile(path, &Options{MaxHeaderSize: 10}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("OpenIndexFile with a 10-byte cap = %v, want ErrTooLarge", err)
	}
}

const wmGap = `{"weight_map":{"t":"gap.safetensors"}}`

func TestOpenPath(t *testing.T) {
	single := writeAll(t, goldenHeaders["basic"])
	mkdir := func(files map[string][]byte) string {
		dir := t.TempDir()
		for name, b := range files {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	sharded := filepath.Dir(shardedDir(t, goodIndex))
	tests := []struct {
		name    string
		path    string
		sharded bool
		want    error
	}{
		{"index file", filepath.Join(sharded, "model.safetensors.index.json"), true, nil},
		{"sharded dir", sharded, true, nil},
		{"single file", filepath.Join(sharded, shard1), false, nil},
		{"model.safetensors dir", mkdir(map[string][]byte{"model.safetensors": single, "other.safetensors": single}), false, nil},
		{"lone safetensors dir", mkdir(map[string][]byte{"weights.safetensors": single, "README": nil}), false, nil},
		{"ambiguous dir", mkdir(map[string][]byte{"model.safetensors": single, "model.safetensors.index.json": []byte(goodIndex)}), false, ErrFormat},
		{"several files no index", mkdir(map[string][]byte{"x.safetensors": single, "y.safetensors": single}), false, ErrFormat},
		{"empty dir", t.TempDir(), false, fs.ErrNotExist},
		{"missing path", filepath.Join(sharded, "nope"), false, fs.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, err := OpenPath(tt.path)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Errorf("OpenPath = %v, want %v", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			if _, ok := src.(*Sharded); ok != tt.sharded {
				t.Errorf("OpenPath returned %T", src)
			}
			if len(src.Tensors()) == 0 {
				t.Error("no tensors")
			}
			for _, ti := range src.Tensors() {
				if _, err := src.ReadTensor(ti.Name); err != nil {
					t.Error(err)
				}
			}
		})
	}
}
