package neural_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/writer"
)

// TestEmptyTensor: an empty matrix round-trips through a file, and an
// empty tensor entry carrying aux data is rejected (nothing can hide in a
// valid file).
func TestEmptyTensor(t *testing.T) {
	var buf bytes.Buffer
	w, err := writer.New(&buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteTensor(&codec.Tensor{Name: "e", DType: format.F32, Shape: []uint64{0, 16}}, "nwc", nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := reader.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()), nil)
	if err != nil {
		t.Fatal(err)
	}
	tt, _ := r.Tensor("e")
	if b, err := tt.Bytes(); err != nil || len(b) != 0 {
		t.Fatalf("empty tensor decoded to %d bytes, %v", len(b), err)
	}
	c, _ := codec.LookupDecoder("nwc")
	e := tt.Entry()
	e.Aux = []format.NamedSection{{Name: "scales", Inline: []byte{0, 0}}}
	if _, err := c.NewDecoder(&e, nil); !errors.Is(err, format.ErrFormat) {
		t.Fatalf("empty tensor with aux: %v", err)
	}
}
