package format

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func cloneFixture() *Index {
	return &Index{
		Metadata: map[string]string{"format": "pt"},
		Sources:  []Source{{Name: "a.safetensors", Header: Section{Offset: 64, Length: 10, CRC: 1}}},
		Blobs:    []Blob{{Codec: "nwc", SHA256: [32]byte{1}, Section: &Section{Offset: 128, Length: 5, CRC: 2}}},
		Tensors: []Tensor{{
			Name: "w", DType: F32, Shape: []uint64{2, 3}, Codec: "ecsq", Params: []byte{0x80}, Blob: 0,
			View: [2]uint64{2, 3}, Groups: []Group{{End: 6, Section: Section{Offset: 192, Length: 4, CRC: 3}}},
			Aux: []NamedSection{{Name: "scales", Inline: []byte{1, 2}}},
		}},
	}
}

// TestCloneIsDeep changes every reachable part of a clone and checks that
// the original did not change.
func TestCloneIsDeep(t *testing.T) {
	x := cloneFixture()
	c := x.Clone()
	if diff := cmp.Diff(x, c); diff != "" {
		t.Fatalf("clone differs:\n%s", diff)
	}
	c.Metadata["format"] = "changed"
	c.Sources[0].Name = "changed"
	c.Blobs[0].Section.Length = 99
	c.Blobs[0].SHA256[0] = 9
	ct := &c.Tensors[0]
	ct.Shape[0] = 99
	ct.Params[0] = 0
	ct.Groups[0].End = 99
	ct.Aux[0].Inline[0] = 99
	ct.Aux[0].Name = "changed"
	if diff := cmp.Diff(cloneFixture(), x); diff != "" {
		t.Fatalf("changing the clone changed the original:\n%s", diff)
	}
	// Absent and empty stay distinct.
	empty := (&Index{Metadata: map[string]string{}, Tensors: []Tensor{{Params: []byte{}}}}).Clone()
	if empty.Metadata == nil || empty.Tensors[0].Params == nil || empty.Tensors[0].Shape != nil {
		t.Fatalf("clone lost the difference between nil and empty: %+v", empty)
	}
}
