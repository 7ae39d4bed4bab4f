package reader

import (
	"context"
	"fmt"

	"github.com/nwcodec/nwc/format"
)

// NumGroups returns the number of chunk groups the tensor is stored in.
// Callers that schedule the groups themselves (decoding a model to a file
// on every core, each group written at its own offset) use it with
// GroupElements and DecodeGroupInto.
func (t *Tensor) NumGroups() int { return len(t.e.Groups) }

// GroupElements returns the range [e0, e1) of elements group i holds.
func (t *Tensor) GroupElements(i int) (e0, e1 uint64) { return t.e.GroupStart(i), t.e.Groups[i].End }

// DecodeGroupInto is DecodeInto for the elements of group i alone: len(dst)
// must be their number × dt.Size().
func (t *Tensor) DecodeGroupInto(ctx context.Context, i int, dst []byte, dt format.DType) error {
	if i < 0 || i >= len(t.e.Groups) {
		return fmt.Errorf("nwc: tensor %q: group %d out of range [0, %d)", t.e.Name, i, len(t.e.Groups))
	}
	e0, e1 := t.GroupElements(i)
	return t.decodeBytes(ctx, e0, e1, dst, dt)
}
