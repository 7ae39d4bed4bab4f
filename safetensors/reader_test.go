package safetensors

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func TestFileAccess(t *testing.T) {
	in := writeAll(t, goldenHeaders["basic"])
	f, err := parseBytes(in, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Size() != int64(len(in)) {
		t.Errorf("Size = %d, want %d", f.Size(), len(in))
	}
	ti, ok := f.Tensor("b")
	if !ok {
		t.Fatal("tensor b not found")
	}
	if want := f.DataOffset() + 24; ti.Offset != want || ti.Length != 6 {
		t.Errorf("b at [%d,+%d), want [%d,+6)", ti.Offset, ti.Length, want)
	}
	if !bytes.Equal(in[ti.Offset:ti.Offset+ti.Length], pattern("b", 6)) {
		t.Error("absolute offset of b does not locate its data")
	}
	sr, err := f.Open("b")
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := io.ReadAll(sr); !bytes.Equal(got, pattern("b", 6)) {
		t.Errorf("Open(b) reads %x", got)
	}

	// Returned values must not alias the File's state.
	ti.Shape[0] = 99
	f.Tensors()[0].Shape[0] = 99
	f.Metadata()["format"] = "changed"
	f.RawHeader()[0] = 'x'
	if ti2, _ := f.Tensor("b"); ti2.Shape[0] != 3 || f.Tensors()[0].Shape[0] != 2 ||
		f.Metadata()["format"] != "pt" || f.RawHeader()[0] != '{' {
		t.Error("mutating returned values changed the File")
	}

	for _, name := range []string{"missing", "", "__metadata__"} {
		if _, ok := f.Tensor(name); ok {
			t.Errorf("Tensor(%q) found", name)
		}
		if _, err := f.Open(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Open(%q) = %v, want fs.ErrNotExist", name, err)
		}
		if _, err := f.ReadTensor(name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadTensor(%q) = %v, want fs.ErrNotExist", name, err)
		}
	}
}

// shortReaderAt holds fewer bytes than the size the caller claims.
type shortReaderAt struct{ b []byte }

func (r shortReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(r.b)) {
		return 0, io.EOF
	}
	n := copy(p, r.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func TestReaderShortInput(t *testing.T) {
	in := writeAll(t, goldenHeaders["basic"])
	tests := []struct {
		name string
		have int // bytes actually available
	}{
		{"prefix cut", 4},
		{"header cut", 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewReader(shortReaderAt{in[:tt.have]}, int64(len(in)), nil)
			if !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("error = %v, want io.ErrUnexpectedEOF", err)
			}
		})
	}
	f, err := NewReader(shortReaderAt{in[:len(in)-1]}, int64(len(in)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.ReadTensor("mask"); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("ReadTensor past the real end = %v, want io.ErrUnexpectedEOF", err)
	}
	if _, err := f.ReadTensor("none"); err != nil {
		t.Errorf("ReadTensor of an empty tensor: %v", err)
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.safetensors")
	bad := filepath.Join(dir, "bad.safetensors")
	if err := os.WriteFile(good, writeAll(t, goldenHeaders["dtypes"]), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, badFiles["gap"], 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := Open(good)
	if err != nil {
		t.Fatal(err)
	}
	checkSameContent(t, &rc.File, goldenHeaders["dtypes"])
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		path string
		want error
	}{
		{bad, ErrFormat},
		{dir, ErrFormat},
		{filepath.Join(dir, "absent"), fs.ErrNotExist},
	}
	for _, tt := range tests {
		_, err := Open(tt.path)
		if !errors.Is(err, tt.want) {
			t.Errorf("Open(%s) = %v, want %v", tt.path, err, tt.want)
		}
	}
	if _, err := Open(bad); err == nil || !bytes.Contains([]byte(err.Error()), []byte(bad)) {
		t.Errorf("error %v does not name the file", err)
	}
	if _, err := OpenFile(good, &Options{MaxHeaderSize: 8}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("OpenFile with a tiny header cap = %v, want ErrTooLarge", err)
	}
}

// manyTensors returns a file with n small tensors, the shape of a large
// checkpoint's header.
func manyTensors(b *testing.B, n int) []byte {
	h := &Header{Metadata: map[string]string{"format": "pt"}}
	for i := range n {
		h.Tensors = append(h.Tensors, TensorInfo{
			Name:  "model.layers." + strconv.Itoa(i/16) + ".mlp.proj_" + strconv.Itoa(i%16) + ".weight",
			DType: BF16, Shape: []int64{4, 2},
		})
	}
	return writeAll(b, h)
}

func BenchmarkNewReader(b *testing.B) {
	in := manyTensors(b, 10000)
	f, err := parseBytes(in, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(f.DataOffset())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseBytes(in, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewWriter(b *testing.B) {
	in := manyTensors(b, 10000)
	f, err := parseBytes(in, nil)
	if err != nil {
		b.Fatal(err)
	}
	h := &Header{Metadata: f.Metadata(), Tensors: f.Tensors()}
	b.SetBytes(f.DataOffset())
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewWriter(io.Discard, h); err != nil {
			b.Fatal(err)
		}
	}
}
