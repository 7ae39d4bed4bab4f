package reader

import "fmt"

// NumGroups returns the number of chunk groups the tensor is stored in.
// Streaming consumers decode a tensor group by group with DecodeGroup so
// that they never hold the whole tensor.
func (t *Tensor) NumGroups() int { return len(t.e.Groups) }

// GroupElements returns the range [e0, e1) of elements group i holds.
func (t *Tensor) GroupElements(i int) (e0, e1 uint64) { return t.e.GroupStart(i), t.e.Groups[i].End }

// DecodeGroup reads group i, checks its CRC and decodes it into dst, which
// must hold exactly its elements in the tensor's original dtype.
func (t *Tensor) DecodeGroup(i int, dst []byte) error {
	if i < 0 || i >= len(t.e.Groups) {
		return fmt.Errorf("nwc: tensor %q: group %d out of range [0, %d)", t.e.Name, i, len(t.e.Groups))
	}
	e0, e1 := t.GroupElements(i)
	if want := (e1 - e0) * uint64(t.e.DType.Size()); uint64(len(dst)) != want {
		return fmt.Errorf("nwc: tensor %q group %d: buffer of %d bytes, want %d", t.e.Name, i, len(dst), want)
	}
	dec, err := t.decoder()
	if err != nil {
		return err
	}
	return t.decodeInto(dec, i, e0, e1, dst)
}
