package reader_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/writer"
)

// exampleFile writes a small .nwc file: a 3×2 BF16 matrix coded
// losslessly, a raw F32 vector and the source's metadata.
func exampleFile(path string) error {
	f, err := writer.Create(path, nil)
	if err != nil {
		return err
	}
	defer f.Abort()
	f.SetMetadata(map[string]string{"format": "pt"})
	// BF16 1, 2, 3, -1, 0.5, 0.25, little-endian.
	w := []byte{0x80, 0x3f, 0x00, 0x40, 0x40, 0x40, 0x80, 0xbf, 0x00, 0x3f, 0x80, 0x3e}
	if err := f.WriteTensor(&codec.Tensor{Name: "w", DType: format.BF16, Shape: []uint64{3, 2}, Data: w}, codec.Lossless, nil); err != nil {
		return err
	}
	b := []byte{0, 0, 0x80, 0x3f, 0, 0, 0, 0x40} // F32 1, 2
	if err := f.WriteTensor(&codec.Tensor{Name: "b", DType: format.F32, Shape: []uint64{2}, Data: b}, codec.Raw, nil); err != nil {
		return err
	}
	return f.Close()
}

// Open a file, list its tensors, and decode them the ways an inference
// runtime does: into its own buffers in the dtype it computes in, by rows,
// as a stream, and straight from the mapped file.
func Example() {
	dir, _ := os.MkdirTemp("", "nwc-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "model.nwc")
	if err := exampleFile(path); err != nil {
		fmt.Println(err)
		return
	}

	r, err := reader.Open(path, &reader.Options{Mmap: true}) // reads only the preamble, trailer and index
	if err != nil {
		fmt.Println(err)
		return
	}
	defer r.Close()
	ctx := context.Background()
	for _, t := range r.Tensors() {
		fmt.Println(t.Name(), t.DType(), t.Shape(), t.Codec())
	}
	fmt.Println("metadata:", r.Metadata())

	w, err := r.Tensor("w")
	if err != nil {
		fmt.Println(err)
		return
	}
	all := make([]float32, w.NumElements())
	err = w.Float32Into(ctx, all) // groups decoded in parallel into all; BF16 → F32 is exact
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("w as float32:", all)

	row := make([]byte, w.Cols()*2)
	err = w.DecodeRowsInto(ctx, 1, 2, row, format.F16) // reads only the groups holding row 1
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("row 1 as F16: % x\n", row)

	s, err := w.Open(ctx, format.F32) // an io.ReadCloser holding a few groups at a time
	if err != nil {
		fmt.Println(err)
		return
	}
	n, err := io.Copy(io.Discard, s)
	s.Close()
	fmt.Println("streamed bytes:", n, err)

	b, err := r.Tensor("b")
	if err != nil {
		fmt.Println(err)
		return
	}
	raw, err := b.RawBytes(ctx) // a raw tensor: the mapping itself, valid until r.Close
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("b in place: %v, % x\n", b.InPlace() || !r.Mapped(), raw)

	err = r.Verify(ctx, &reader.VerifyOptions{Deep: true}) // every checksum and padding byte; Deep decodes all
	fmt.Println("verify:", err)
	// Output:
	// w BF16 [3 2] lossless
	// b F32 [2] raw
	// metadata: map[format:pt]
	// w as float32: [1 2 3 -1 0.5 0.25]
	// row 1 as F16: 00 42 00 bc
	// streamed bytes: 24 <nil>
	// b in place: true, 00 00 80 3f 00 00 00 40
	// verify: <nil>
}

// Read from any io.ReaderAt, here a file held in memory.
func ExampleNewReader() {
	var buf bytes.Buffer
	w, _ := writer.New(&buf, nil)
	w.WriteTensor(&codec.Tensor{Name: "ids", DType: format.I32, Shape: []uint64{3}, Data: []byte{7, 0, 0, 0, 8, 0, 0, 0, 9, 0, 0, 0}}, codec.Raw, nil)
	if err := w.Close(); err != nil {
		fmt.Println(err)
		return
	}
	r, err := reader.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	t, _ := r.Tensor("ids")
	ids, _ := t.Bytes()
	fmt.Println(t.DType(), ids)
	// Output: I32 [7 0 0 0 8 0 0 0 9 0 0 0]
}
