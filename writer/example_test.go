package writer_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/writer"
)

// Write tensors as a stream: each tensor's sections go out as soon as it
// is encoded, the index at Close.
func Example() {
	var buf bytes.Buffer
	w, err := writer.New(&buf, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	w.SetMetadata(map[string]string{"format": "pt"})
	// A 2×4 F32 matrix coded losslessly in chunk groups of 16 bytes, and
	// an I64 vector stored raw.
	m := make([]byte, 2*4*4)
	for i := range m {
		m[i] = byte(i)
	}
	if err := w.WriteTensor(&codec.Tensor{Name: "m", DType: format.F32, Shape: []uint64{2, 4}, Data: m},
		codec.Lossless, &codec.EncodeOptions{GroupBytes: 16}); err != nil {
		fmt.Println(err)
		return
	}
	if err := w.WriteTensor(&codec.Tensor{Name: "pos", DType: format.I64, Shape: []uint64{1}, Data: make([]byte, 8)}, codec.Raw, nil); err != nil {
		fmt.Println(err)
		return
	}
	if err := w.Close(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("bytes written:", w.Size() == int64(buf.Len()))

	r, err := reader.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, t := range r.Tensors() {
		fmt.Println(t.Name(), t.Codec(), len(t.Entry().Groups), "groups")
	}
	got, _ := r.Tensors()[0].Bytes()
	fmt.Println("m round trip:", bytes.Equal(got, m))
	fmt.Println("verify:", r.Verify(context.Background(), nil))
	// Output:
	// bytes written: true
	// m lossless 2 groups
	// pos raw 1 groups
	// m round trip: true
	// verify: <nil>
}

// Create writes a file atomically: the target appears only when Close
// succeeds, and Abort (deferred) discards an unfinished file.
func ExampleCreate() {
	dir, _ := os.MkdirTemp("", "nwc-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "model.nwc")

	f, err := writer.Create(path, &writer.Options{Packed: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer f.Abort()
	f.WriteTensor(&codec.Tensor{Name: "b", DType: format.U8, Shape: []uint64{3}, Data: []byte{1, 2, 3}}, codec.Raw, nil)
	_, err = os.Stat(path)
	fmt.Println("before Close:", os.IsNotExist(err))
	if err := f.Close(); err != nil {
		fmt.Println(err)
		return
	}
	_, err = os.Stat(path)
	fmt.Println("after Close:", err == nil)
	// Output:
	// before Close: true
	// after Close: true
}
