package safetensors

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// pattern returns n deterministic bytes seeded by name, so each tensor's data
// is distinguishable from its neighbours'.
func pattern(name string, n int64) []byte {
	b := make([]byte, n)
	h := byte(len(name))
	for i := range len(name) {
		h = h*31 + name[i]
	}
	for i := range b {
		b[i] = h + byte(i)*13
	}
	return b
}

// writeAll writes h with pattern data and returns the file bytes.
func writeAll(t testing.TB, h *Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, ti := range w.Tensors() {
		if err := w.WriteTensor(ti.Name, pattern(ti.Name, ti.Length)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// goldenHeaders are written to testdata/*.safetensors, pinning the canonical
// encoding and seeding FuzzReader.
var goldenHeaders = map[string]*Header{
	"empty": {},
	"basic": {
		Metadata: map[string]string{"format": "pt", "dim": "3"},
		Tensors: []TensorInfo{
			{Name: "w", DType: F32, Shape: []int64{2, 3}},
			{Name: "b", DType: F16, Shape: []int64{3}},
			{Name: "scalar", DType: I64, Shape: []int64{}},
			{Name: "none", DType: U8, Shape: []int64{0, 5}},
			{Name: "mask", DType: Bool, Shape: []int64{4}},
		},
	},
	"escapes": {
		Metadata: map[string]string{"q\"uote": "back\\slash", "ctl\x01\n": "<&>", "": "é😀", "ws": "\b\f\r\x7f"},
		Tensors: []TensorInfo{
			{Name: "a\"b\\c\td\x1f", DType: BF16, Shape: []int64{1}},
			{Name: "ünï/<code>", DType: F8E4M3, Shape: []int64{2}},
		},
	},
	"dtypes": {
		Tensors: []TensorInfo{
			{Name: "f64", DType: F64, Shape: []int64{1}}, {Name: "f32", DType: F32, Shape: []int64{1}},
			{Name: "f16", DType: F16, Shape: []int64{1}}, {Name: "bf16", DType: BF16, Shape: []int64{1}},
			{Name: "e4m3", DType: F8E4M3, Shape: []int64{1}}, {Name: "e5m2", DType: F8E5M2, Shape: []int64{1}},
			{Name: "i64", DType: I64, Shape: []int64{1}}, {Name: "i32", DType: I32, Shape: []int64{1}},
			{Name: "i16", DType: I16, Shape: []int64{1}}, {Name: "i8", DType: I8, Shape: []int64{1}},
			{Name: "u64", DType: U64, Shape: []int64{1}}, {Name: "u32", DType: U32, Shape: []int64{1}},
			{Name: "u16", DType: U16, Shape: []int64{1}}, {Name: "u8", DType: U8, Shape: []int64{1}},
			{Name: "bool", DType: Bool, Shape: []int64{1}},
		},
	},
}

// badFiles are written to testdata/bad_*.safetensors as invalid fuzz seeds.
var badFiles = map[string][]byte{
	"dup":      build(`{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 1),
	"gap":      build(`{"t":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, 2),
	"dtype":    build(`{"t":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}`, 1),
	"trailing": build(`{"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 2),
	"metadata": build(`{"__metadata__":{"n":1}}`, 0),
	"headlen":  withLen(1<<40, "{}"),
}

func TestGolden(t *testing.T) {
	for name, h := range goldenHeaders {
		t.Run(name, func(t *testing.T) {
			got := writeAll(t, h)
			path := filepath.Join("testdata", name+".safetensors")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("writer output differs from %s:\n got %q\nwant %q", path, got, want)
			}
			f, err := parseBytes(got, nil)
			if err != nil {
				t.Fatal(err)
			}
			if f.DataOffset()%8 != 0 {
				t.Errorf("data section starts at %d, not a multiple of 8", f.DataOffset())
			}
			checkSameContent(t, f, h)
		})
	}
	for name, b := range badFiles {
		t.Run("bad_"+name, func(t *testing.T) {
			path := filepath.Join("testdata", "bad_"+name+".safetensors")
			if *update {
				if err := os.WriteFile(path, b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, want) {
				t.Errorf("%s is stale; run go test -update", path)
			}
			if _, err := parseBytes(want, nil); err == nil {
				t.Errorf("%s parsed successfully", path)
			}
		})
	}
}

// checkSameContent verifies that f holds exactly h's tensors, in order, with
// the pattern data writeAll stores.
func checkSameContent(t *testing.T, f *File, h *Header) {
	t.Helper()
	if diff := cmp.Diff(h.Metadata, f.Metadata()); diff != "" {
		t.Errorf("metadata mismatch (-want +got):\n%s", diff)
	}
	got := f.Tensors()
	opt := cmpopts.IgnoreFields(TensorInfo{}, "Offset", "Length")
	if diff := cmp.Diff(h.Tensors, got, opt, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("tensors mismatch (-want +got):\n%s", diff)
	}
	for _, ti := range got {
		data, err := f.ReadTensor(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, pattern(ti.Name, ti.Length)) {
			t.Errorf("tensor %q data differs", ti.Name)
		}
	}
}

func TestCanonicalHeader(t *testing.T) {
	got := writeAll(t, goldenHeaders["basic"])
	want := `{"__metadata__":{"dim":"3","format":"pt"},` +
		`"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},` +
		`"b":{"dtype":"F16","shape":[3],"data_offsets":[24,30]},` +
		`"scalar":{"dtype":"I64","shape":[],"data_offsets":[30,38]},` +
		`"none":{"dtype":"U8","shape":[0,5],"data_offsets":[38,38]},` +
		`"mask":{"dtype":"BOOL","shape":[4],"data_offsets":[38,42]}}`
	want += strings.Repeat(" ", (8-len(want)%8)%8)
	if h := string(got[8 : 8+len(want)]); h != want {
		t.Errorf("header\n got %q\nwant %q", h, want)
	}
	if len(got) != 8+len(want)+42 {
		t.Errorf("file is %d bytes, want %d", len(got), 8+len(want)+42)
	}

	esc := writeAll(t, goldenHeaders["escapes"])
	for _, s := range []string{`"a\"b\\c\td\u001f"`, `"ctl\u0001\n":"<&>"`, `"ünï/<code>"`, `"":"é😀"`, `"ws":"\b\f\r` + "\x7f" + `"`} {
		if !bytes.Contains(esc, []byte(s)) {
			t.Errorf("escaped header %q lacks %s", esc, s)
		}
	}
}

func TestRawRoundTrip(t *testing.T) {
	files := [][]byte{
		build(`{"y":{"dtype":"U16","shape":[1],"data_offsets":[2,4]},"x":{"data_offsets":[0,2],"dtype":"F16","shape":[1]}}`, 4),
		build("{\n  \"__metadata__\" : {\"a\": \"b\"}\n}\n\n", 0),
		build(`{"e":{"dtype":"U8","shape":[0],"data_offsets":[1,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}`, 1),
		writeAll(t, goldenHeaders["escapes"]),
	}
	for i, in := range files {
		f, err := parseBytes(in, nil)
		if err != nil {
			t.Fatalf("file %d: %v", i, err)
		}
		if out := rewriteRaw(t, f); !bytes.Equal(out, in) {
			t.Errorf("file %d: raw round trip\n got %q\nwant %q", i, out, in)
		}
	}
}

// rewriteRaw copies f through NewWriterRaw, streaming each tensor.
func rewriteRaw(t testing.TB, f *File) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := NewWriterRaw(&buf, f.RawHeader())
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(f.Tensors(), w.Tensors()); diff != "" {
		t.Fatalf("writer layout differs from reader (-reader +writer):\n%s", diff)
	}
	for _, ti := range f.Tensors() {
		r, err := f.Open(ti.Name)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteTensorFrom(ti.Name, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestNewWriterErrors(t *testing.T) {
	tests := []struct {
		name string
		h    *Header
		want error
	}{
		{"unknown dtype", &Header{Tensors: []TensorInfo{{Name: "t", DType: "F4", Shape: []int64{1}}}}, ErrUnsupported},
		{"empty dtype", &Header{Tensors: []TensorInfo{{Name: "t", Shape: []int64{1}}}}, ErrUnsupported},
		{"negative dim", &Header{Tensors: []TensorInfo{{Name: "t", DType: U8, Shape: []int64{-1}}}}, ErrFormat},
		{"size overflow", &Header{Tensors: []TensorInfo{{Name: "t", DType: F64, Shape: []int64{1 << 61}}}}, ErrFormat},
		{"total overflow", &Header{Tensors: []TensorInfo{{Name: "a", DType: U8, Shape: []int64{1 << 62}}, {Name: "b", DType: U8, Shape: []int64{1 << 62}}}}, ErrFormat},
		{"duplicate name", &Header{Tensors: []TensorInfo{{Name: "t", DType: U8}, {Name: "t", DType: U8}}}, ErrFormat},
		{"reserved name", &Header{Tensors: []TensorInfo{{Name: "__metadata__", DType: U8}}}, ErrFormat},
		{"invalid UTF-8 name", &Header{Tensors: []TensorInfo{{Name: "\xff", DType: U8}}}, ErrFormat},
		{"invalid UTF-8 metadata", &Header{Metadata: map[string]string{"k": "\xc3"}}, ErrFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			_, err := NewWriter(&buf, tt.h)
			if !errors.Is(err, tt.want) {
				t.Fatalf("NewWriter error = %v, want %v", err, tt.want)
			}
			if buf.Len() != 0 {
				t.Errorf("NewWriter wrote %d bytes despite failing", buf.Len())
			}
		})
	}
}

func TestNewWriterRawRejects(t *testing.T) {
	for _, raw := range []string{"", "[]", `{"t":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}`, `{"t":1}`} {
		if _, err := NewWriterRaw(io.Discard, []byte(raw)); !errors.Is(err, ErrFormat) {
			t.Errorf("NewWriterRaw(%q) error = %v, want ErrFormat", raw, err)
		}
	}
	// Limits guard reader allocations only; the writer accepts any rank.
	deep := `{"t":{"dtype":"U8","shape":[` + strings.Repeat("1,", 100) + `1],"data_offsets":[0,1]}}`
	if _, err := NewWriterRaw(io.Discard, []byte(deep)); err != nil {
		t.Errorf("NewWriterRaw with rank 101: %v", err)
	}
}

func TestWriterSequence(t *testing.T) {
	h := &Header{Tensors: []TensorInfo{
		{Name: "a", DType: U16, Shape: []int64{2}},
		{Name: "b", DType: U8, Shape: []int64{3}},
	}}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name string
		data []byte
		want error
	}{
		{"b", []byte{1, 2, 3}, ErrWriteOrder},
		{"a", []byte{1, 2, 3}, ErrWriteSize},
		{"a", []byte{1, 2, 3, 4}, nil},
		{"a", []byte{1, 2, 3, 4}, ErrWriteOrder},
	}
	for i, s := range steps {
		if err := w.WriteTensor(s.name, s.data); !errors.Is(err, s.want) || (err == nil) != (s.want == nil) {
			t.Fatalf("step %d: WriteTensor(%q) = %v, want %v", i, s.name, err, s.want)
		}
	}
	if err := w.Close(); !errors.Is(err, ErrWriteIncomplete) || !strings.Contains(err.Error(), `"b"`) {
		t.Errorf("Close with b missing = %v", err)
	}
	if err := w.WriteTensorFrom("b", strings.NewReader("xyzEXTRA")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor("c", nil); !errors.Is(err, ErrWriteOrder) {
		t.Errorf("WriteTensor after the last tensor = %v", err)
	}
	f, err := parseBytes(buf.Bytes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := f.ReadTensor("b"); string(b) != "xyz" {
		t.Errorf("tensor b = %q, want xyz", b)
	}
}

func TestWriterStickyErrors(t *testing.T) {
	h := &Header{Tensors: []TensorInfo{{Name: "a", DType: U8, Shape: []int64{4}}, {Name: "b", DType: U8, Shape: []int64{1}}}}

	w, err := NewWriter(io.Discard, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensorFrom("a", strings.NewReader("ab")); !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, ErrWriteSize) {
		t.Errorf("short WriteTensorFrom = %v", err)
	}
	if err := w.WriteTensor("a", []byte("abcd")); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("WriteTensor after a partial tensor = %v, want the sticky error", err)
	}
	if err := w.Close(); err == nil {
		t.Error("Close after a partial tensor succeeded")
	}

	if _, err := NewWriter(failWriter{}, h); !errors.Is(err, errFull) {
		t.Errorf("NewWriter into a failing writer = %v", err)
	}
	var hdr bytes.Buffer
	if _, err := NewWriter(&hdr, h); err != nil {
		t.Fatal(err)
	}
	buf := limitedWriter{n: hdr.Len() + 2} // room for the header and half of "a"
	w, err = NewWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor("a", []byte("abcd")); !errors.Is(err, errFull) {
		t.Errorf("WriteTensor into a full writer = %v", err)
	}
	if err := w.Close(); !errors.Is(err, errFull) {
		t.Errorf("Close after a write error = %v", err)
	}
}

var errFull = errors.New("writer full")

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errFull }

// limitedWriter accepts n bytes and then fails.
type limitedWriter struct{ n int }

func (w *limitedWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		w.n = 0
		return 0, errFull
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	h := goldenHeaders["basic"]
	if err := WriteFile(path, h, func(name string) ([]byte, error) {
		ti, _ := lookup(h, name)
		n, _ := byteSize(ti.DType, ti.Shape)
		return pattern(name, n), nil
	}); err != nil {
		t.Fatal(err)
	}
	rc, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	checkSameContent(t, &rc.File, h)

	// A failing data source must leave neither the target nor a temp file.
	bad := filepath.Join(dir, "bad.safetensors")
	errSrc := errors.New("source failed")
	if err := WriteFile(bad, h, func(string) ([]byte, error) { return nil, errSrc }); !errors.Is(err, errSrc) {
		t.Errorf("WriteFile = %v, want %v", err, errSrc)
	}
	if err := WriteFile(bad, h, func(string) ([]byte, error) { return []byte{1}, nil }); !errors.Is(err, ErrWriteSize) {
		t.Errorf("WriteFile with short data = %v, want ErrWriteSize", err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name() != "m.safetensors" {
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q, want only m.safetensors", names)
	}
	if _, err := os.Stat(bad); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("failed WriteFile left %s: %v", bad, err)
	}
}

func lookup(h *Header, name string) (TensorInfo, bool) {
	for _, t := range h.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return TensorInfo{}, false
}

func TestWriteTensorFunc(t *testing.T) {
	h := &Header{Tensors: []TensorInfo{{Name: "a", DType: U8, Shape: []int64{5}}, {Name: "b", DType: U8, Shape: []int64{2}}}}
	var buf bytes.Buffer
	w, err := NewWriter(&buf, h)
	if err != nil {
		t.Fatal(err)
	}
	pieces := func(ps ...string) func(func([]byte) error) error {
		return func(write func([]byte) error) error {
			for _, p := range ps {
				if err := write([]byte(p)); err != nil {
					return err
				}
			}
			return nil
		}
	}
	if err := w.WriteTensorFunc("b", pieces("xy")); !errors.Is(err, ErrWriteOrder) {
		t.Errorf("out of order: %v", err)
	}
	if err := w.WriteTensorFunc("a", pieces("ab", "", "cde")); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensorFunc("b", pieces("xy")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := parseBytes(buf.Bytes(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if a, _ := f.ReadTensor("a"); string(a) != "abcde" {
		t.Errorf("a = %q", a)
	}
	for _, ps := range [][]string{{"ab"}, {"abc", "def"}} {
		w, _ := NewWriter(io.Discard, h)
		if err := w.WriteTensorFunc("a", pieces(ps...)); !errors.Is(err, ErrWriteSize) {
			t.Errorf("pieces %q: %v, want ErrWriteSize", ps, err)
		}
		if err := w.WriteTensor("a", []byte("abcde")); !errors.Is(err, ErrWriteSize) {
			t.Errorf("after a partial tensor: %v, want the sticky error", err)
		}
	}
}

func TestSkipTensor(t *testing.T) {
	h := &Header{Tensors: []TensorInfo{{Name: "a", DType: U8, Shape: []int64{2}}, {Name: "b", DType: U8, Shape: []int64{1}}}}
	w, err := NewWriter(io.Discard, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SkipTensor("b"); !errors.Is(err, ErrWriteOrder) {
		t.Errorf("SkipTensor out of order: %v", err)
	}
	if err := w.SkipTensor("a"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); !errors.Is(err, ErrWriteIncomplete) {
		t.Errorf("Close with b missing: %v", err)
	}
	if err := w.SkipTensor("b"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}
