package reader_test

import (
	"bytes"
	"testing"

	"nwc/codec"
	"nwc/format"
	"nwc/reader"
	"nwc/writer"
)

func TestRawRoundTripSmoke(t *testing.T) {
	var buf bytes.Buffer
	w, err := writer.New(&buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.SetMetadata(map[string]string{"a": "b"})
	data := []byte{1, 2, 3, 4, 5, 6, 7, 8}
	if err := w.WriteTensor(&codec.Tensor{Name: "x", DType: format.F32, Shape: []uint64{2}, Data: data}, codec.Raw, nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := reader.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()), nil)
	if err != nil {
		t.Fatal(err)
	}
	tt, err := r.Tensor("x")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tt.Bytes()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("got %v, %v", got, err)
	}
	if err := r.Verify(true); err != nil {
		t.Fatal(err)
	}
}
