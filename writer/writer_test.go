package writer_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/writer"
)

func tensors() []*codec.Tensor {
	return []*codec.Tensor{
		{Name: "a", DType: format.F32, Shape: []uint64{4, 4}, Data: bytes.Repeat([]byte{1, 2, 3, 4}, 16)},
		{Name: "b", DType: format.BF16, Shape: []uint64{3}, Data: []byte{1, 2, 3, 4, 5, 6}},
		{Name: "c", DType: format.I8, Shape: []uint64{}, Data: []byte{9}},
	}
}

func write(t *testing.T, w *writer.Writer) error {
	t.Helper()
	if err := w.SetMetadata(map[string]string{"k": "v"}); err != nil {
		return err
	}
	for i, tt := range tensors() {
		id := codec.Raw
		if i%2 == 1 {
			id = codec.Lossless
		}
		if err := w.WriteTensor(tt, id, nil); err != nil {
			return err
		}
	}
	return w.Close()
}

func TestDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	for _, buf := range []*bytes.Buffer{&a, &b} {
		w, err := writer.New(buf, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := write(t, w); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("same input gave different files")
	}
	r, err := reader.NewReader(bytes.NewReader(a.Bytes()), int64(a.Len()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(context.Background(), &reader.VerifyOptions{Deep: true}); err != nil {
		t.Fatal(err)
	}
}

// failWriter fails every write once n bytes have been written.
type failWriter struct {
	n   int
	err error
}

func (f *failWriter) Write(p []byte) (int, error) {
	if len(p) > f.n {
		k := f.n
		f.n = 0
		return k, f.err
	}
	f.n -= len(p)
	return len(p), nil
}

// TestStickyWriteError fails the output at every byte position in turn: the
// error must come back from Close (or an earlier call) and stay.
func TestStickyWriteError(t *testing.T) {
	var full bytes.Buffer
	w, _ := writer.New(&full, nil)
	if err := write(t, w); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("disk full")
	for n := 0; n < full.Len(); n++ {
		fw := &failWriter{n: n, err: boom}
		w, err := writer.New(fw, nil)
		if err == nil {
			err = write(t, w)
		}
		if !errors.Is(err, boom) {
			t.Fatalf("failing after %d bytes: got %v, want the write error", n, err)
		}
		if w != nil {
			if err := w.WriteTensor(tensors()[0], codec.Raw, nil); err == nil {
				t.Fatalf("failing after %d bytes: write after the error succeeded", n)
			}
		}
	}
}

func TestMisuse(t *testing.T) {
	var buf bytes.Buffer
	w, err := writer.New(&buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := tensors()
	if err := w.WriteTensor(ts[0], codec.Raw, nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		err  error
	}{
		{"duplicate name", w.WriteTensor(ts[0], codec.Raw, nil)},
		{"unknown codec", w.WriteTensor(ts[1], "nope", nil)},
		{"unknown dtype", w.WriteTensor(&codec.Tensor{Name: "x", DType: "F4", Data: []byte{0}}, codec.Raw, nil)},
		{"wrong size", w.WriteTensor(&codec.Tensor{Name: "y", DType: format.F32, Shape: []uint64{2}, Data: []byte{0}}, codec.Raw, nil)},
		{"empty name", w.WriteTensor(&codec.Tensor{DType: format.U8, Data: []byte{0}}, codec.Raw, nil)},
		{"backwards groups", w.WriteEncoded("z", format.U8, []uint64{4}, codec.Raw, &codec.Encoded{
			View: [2]uint64{1, 4}, Groups: []codec.EncodedGroup{{End: 3, Data: []byte{1, 2, 3}}, {End: 2, Data: []byte{4}}}})},
		{"bad view", w.WriteEncoded("v", format.U8, []uint64{4}, codec.Raw, &codec.Encoded{
			View: [2]uint64{2, 4}, Groups: []codec.EncodedGroup{{End: 4, Data: []byte{1, 2, 3, 4}}}})},
	}
	for _, c := range cases {
		if c.err == nil {
			t.Errorf("%s: accepted", c.name)
		}
	}
	if format.Class(cases[1].err) != "unsupported" || format.Class(cases[2].err) != "unsupported" {
		t.Errorf("unknown codec/dtype not classified unsupported: %v / %v", cases[1].err, cases[2].err)
	}
	// None of the rejected calls may poison the file.
	if err := w.WriteTensor(ts[1], codec.Raw, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); !errors.Is(err, writer.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	if err := w.WriteTensor(ts[2], codec.Raw, nil); !errors.Is(err, writer.ErrClosed) {
		t.Fatalf("write after Close: %v", err)
	}
	r, err := reader.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Tensors()) != 2 {
		t.Fatalf("%d tensors, want 2", len(r.Tensors()))
	}
}

func TestAlignment(t *testing.T) {
	for _, a := range []uint8{25, 255} {
		if _, err := writer.New(&bytes.Buffer{}, &writer.Options{AlignLog2: a}); err == nil {
			t.Errorf("alignment 2^%d accepted", a)
		}
	}
	// Packed files put every section right after the previous one.
	size := func(o *writer.Options) int {
		var buf bytes.Buffer
		w, err := writer.New(&buf, o)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 5 {
			data := bytes.Repeat([]byte{byte(i)}, 12+i)
			tn := &codec.Tensor{Name: fmt.Sprint("t", i), DType: format.U8, Shape: []uint64{uint64(len(data))}, Data: data}
			if err := w.WriteTensor(tn, codec.Raw, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		r, err := reader.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, tn := range r.Tensors() {
			if _, err := tn.Bytes(); err != nil {
				t.Fatal(err)
			}
		}
		return buf.Len()
	}
	packed, aligned := size(&writer.Options{Packed: true}), size(nil)
	// Five data sections and the index: each aligned one can waste up to
	// 63 bytes; these waste at least 64−32−16 = 16 each.
	if aligned-packed < 5*16 {
		t.Errorf("packed file %d bytes, 64-byte aligned %d: want at least 80 saved", packed, aligned)
	}
}

// TestCreateAtomic checks that a file appears under its name only when
// complete, and that an aborted file leaves nothing behind.
func TestCreateAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "out.nwc")
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := writer.Create(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.WriteTensor(tensors()[0], codec.Raw, nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Fatal("target changed before Close")
	}
	if err := f.Abort(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("after Abort the directory holds %d entries, want only the old file", len(entries))
	}
	if b, _ := os.ReadFile(path); string(b) != "old" {
		t.Fatal("Abort touched the target")
	}

	f, err = writer.Create(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tensors() {
		if err := f.WriteTensor(tt, codec.Raw, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := reader.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if len(r.Tensors()) != 3 {
		t.Fatalf("%d tensors", len(r.Tensors()))
	}
	entries, _ = os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
}

// storedIndex returns the index bytes of a file as stored.
func storedIndex(b []byte) []byte {
	tr := b[len(b)-format.TrailerLen:]
	off := binary.LittleEndian.Uint64(tr[0:])
	n := binary.LittleEndian.Uint64(tr[8:])
	return b[off : off+n]
}

// TestPlainIndex checks that PlainIndex stores an index zstd would shrink
// as a plain msgpack map, readable by any msgpack decoder, and that the
// file reads back as the compressed one does.
func TestPlainIndex(t *testing.T) {
	build := func(plain bool) []byte {
		var buf bytes.Buffer
		w, err := writer.New(&buf, &writer.Options{PlainIndex: plain})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 40 {
			tn := &codec.Tensor{Name: fmt.Sprintf("layers.%d.weight", i), DType: format.U8, Shape: []uint64{3}, Data: []byte{byte(i), 1, 2}}
			if err := w.WriteTensor(tn, codec.Raw, nil); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}
	packed, plain := build(false), build(true)
	if !format.IndexCompressed(storedIndex(packed)) {
		t.Fatal("the default index of 40 similar entries is not compressed")
	}
	ix := storedIndex(plain)
	if format.IndexCompressed(ix) || ix[0]&0xf0 != 0x80 {
		t.Fatalf("plain index starts with %#02x, want a fixmap header", ix[0])
	}
	var m map[string]any
	if err := msgpack.Unmarshal(ix, &m); err != nil {
		t.Fatalf("plain index is not msgpack: %v", err)
	}
	if ts, ok := m["tensors"].([]any); !ok || len(ts) != 40 {
		t.Fatalf("plain index holds %T %v under \"tensors\", want 40 entries", m["tensors"], len(ts))
	}
	for _, b := range [][]byte{packed, plain} {
		r, err := reader.NewReader(bytes.NewReader(b), int64(len(b)), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Verify(context.Background(), &reader.VerifyOptions{Deep: true}); err != nil {
			t.Fatal(err)
		}
		tn, err := r.Tensor("layers.39.weight")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := tn.Bytes(); err != nil || !bytes.Equal(got, []byte{39, 1, 2}) {
			t.Fatalf("decoded %v, %v", got, err)
		}
	}
}

// TestWriterLimits checks that the writer refuses, at Close, an index a
// reader at the limits of FORMAT.md §5.4 may reject.
func TestWriterLimits(t *testing.T) {
	for name, edit := range map[string]func(w *writer.Writer) error{
		"codec id of 65 bytes": func(w *writer.Writer) error {
			return w.WriteEncoded("x", format.U8, []uint64{1}, strings.Repeat("c", 65), &codec.Encoded{
				View: [2]uint64{1, 1}, Groups: []codec.EncodedGroup{{End: 1, Data: []byte{1}}}})
		},
		"metadata key of 64 KiB + 1": func(w *writer.Writer) error {
			return w.SetMetadata(map[string]string{strings.Repeat("k", 1<<16+1): "v"})
		},
	} {
		w, err := writer.New(&bytes.Buffer{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := edit(w); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := w.Close(); !errors.Is(err, format.ErrLimit) {
			t.Errorf("%s: Close returned %v, want a limit error", name, err)
		}
	}
}
