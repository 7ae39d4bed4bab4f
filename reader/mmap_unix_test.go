//go:build unix

package reader_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/writer"
)

func writeTemp(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "m.nwc")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMmapInPlace: in a mapped, aligned file a raw tensor whose groups lie
// back to back is returned from the mapping itself; every other tensor is
// a copy, and all of them hold the decoded bytes.
func TestMmapInPlace(t *testing.T) {
	specs := []tensorSpec{
		{"one.group", codec.Raw, format.F32, []uint64{8, 8}, codec.EncodeOptions{}},
		{"aligned.groups", codec.Raw, format.BF16, []uint64{64, 64}, codec.EncodeOptions{GroupBytes: 1024}},
		{"padded.groups", codec.Raw, format.F32, []uint64{30, 10}, codec.EncodeOptions{GroupBytes: 1000}},
		{"lossless", codec.Lossless, format.BF16, []uint64{16, 16}, codec.EncodeOptions{}},
	}
	p := writeTemp(t, buildFile(t, specs, nil))
	rc, err := reader.Open(p, &reader.Options{Mmap: true})
	if err != nil {
		t.Fatal(err)
	}
	if !rc.Mapped() {
		t.Fatal("file not mapped")
	}
	ctx := context.Background()
	wantInPlace := map[string]bool{"one.group": true, "aligned.groups": true}
	for _, tt := range rc.Tensors() {
		want, err := tt.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		if got := tt.InPlace(); got != wantInPlace[tt.Name()] {
			t.Errorf("%s: InPlace %v", tt.Name(), got)
		}
		a, err := tt.RawBytes(ctx)
		if err != nil || !bytes.Equal(a, want) {
			t.Fatalf("%s: RawBytes differs (%v)", tt.Name(), err)
		}
		b, _ := tt.RawBytes(ctx)
		if same := &a[0] == &b[0]; same != tt.InPlace() {
			t.Errorf("%s: two calls share memory: %v, InPlace %v", tt.Name(), same, tt.InPlace())
		}
	}
	// Reading from a plain file gives the same bytes and never in place.
	plain, err := reader.Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	for _, tt := range plain.Tensors() {
		if tt.InPlace() {
			t.Errorf("%s: in place without a mapping", tt.Name())
		}
	}

	tt, _ := rc.Tensor("one.group")
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := tt.RawBytes(ctx); !errors.Is(err, os.ErrClosed) {
		t.Errorf("RawBytes after Close: %v", err)
	}
	if _, err := tt.Bytes(); err == nil {
		t.Error("decoding after Close succeeded")
	}
}

// TestMmapUnaligned: a raw tensor at an offset that is not a multiple of
// its element size (a packed file) is copied.
func TestMmapUnaligned(t *testing.T) {
	var buf bytes.Buffer
	w, _ := writer.New(&buf, &writer.Options{Packed: true})
	w.WriteTensor(&codec.Tensor{Name: "b", DType: format.U8, Shape: []uint64{3}, Data: []byte{1, 2, 3}}, codec.Raw, nil)
	w.WriteTensor(&codec.Tensor{Name: "w", DType: format.F32, Shape: []uint64{2}, Data: []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0x40}}, codec.Raw, nil)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rc, err := reader.Open(writeTemp(t, buf.Bytes()), &reader.Options{Mmap: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tb, _ := rc.Tensor("b")
	tw, _ := rc.Tensor("w")
	if !tb.InPlace() || tw.InPlace() {
		t.Fatalf("InPlace: U8 %v, F32 at offset %d %v", tb.InPlace(), tw.Entry().Groups[0].Offset, tw.InPlace())
	}
	got, err := tw.RawBytes(context.Background())
	if err != nil || !bytes.Equal(got, []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0x40}) {
		t.Fatalf("unaligned copy: % x, %v", got, err)
	}
}

// TestMmapChecksum: a damaged raw tensor handed out in place is a checksum
// error, found on the first call.
func TestMmapChecksum(t *testing.T) {
	spec := tensorSpec{"w", codec.Raw, format.F32, []uint64{64, 64}, codec.EncodeOptions{GroupBytes: 4096}}
	b := buildFile(t, []tensorSpec{spec}, nil)
	r := openBytes(t, b, nil)
	tt, _ := r.Tensor("w")
	b[tt.Entry().Groups[2].Offset+5] ^= 0x10
	rc, err := reader.Open(writeTemp(t, b), &reader.Options{Mmap: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tt, _ = rc.Tensor("w")
	if !tt.InPlace() {
		t.Fatal("not in place")
	}
	if _, err := tt.RawBytes(context.Background()); !errors.Is(err, format.ErrChecksum) {
		t.Fatalf("damaged tensor: %v", err)
	}
}
