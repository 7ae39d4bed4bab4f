package reader_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/nwcodec/nwc/reader"
)

// TestDecodeGroup: the groups decoded one by one, laid end to end, are the
// whole tensor; bad indices and buffer sizes are refused.
func TestDecodeGroup(t *testing.T) {
	b := multiGroupFile(t)
	r, err := reader.NewReader(bytes.NewReader(b), int64(len(b)), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range r.Tensors() {
		full, err := tt.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		var next uint64
		for i := range tt.NumGroups() {
			e0, e1 := tt.GroupElements(i)
			if e0 != next || e1 <= e0 {
				t.Fatalf("%s group %d covers [%d, %d) after %d", tt.Name(), i, e0, e1, next)
			}
			next = e1
			buf := make([]byte, 2*(e1-e0))
			if err := tt.DecodeGroupInto(context.Background(), i, buf, tt.DType()); err != nil {
				t.Fatal(err)
			}
			got = append(got, buf...)
			if err := tt.DecodeGroupInto(context.Background(), i, buf[1:], tt.DType()); err == nil {
				t.Errorf("%s group %d: short buffer accepted", tt.Name(), i)
			}
		}
		if !bytes.Equal(got, full) {
			t.Errorf("%s: groups differ from Bytes", tt.Name())
		}
		for _, i := range []int{-1, tt.NumGroups()} {
			if err := tt.DecodeGroupInto(context.Background(), i, nil, tt.DType()); err == nil {
				t.Errorf("%s: group %d accepted", tt.Name(), i)
			}
		}
	}
}
