package format

import (
	"cmp"
	"fmt"
	"slices"
)

// AlignUp rounds off up to a multiple of 1<<alignLog2.
func AlignUp(off uint64, alignLog2 uint8) uint64 {
	a := uint64(1) << alignLog2
	return (off + a - 1) &^ (a - 1)
}

// Layout is what Validate needs to know of the file around the index.
type Layout struct {
	FileSize    uint64
	AlignLog2   uint8
	IndexOffset uint64
}

// A Located is a section with a description of what it holds, for error
// messages and for nwc-verify.
type Located struct {
	What   string
	Tensor string // the tensor it belongs to, if any
	Section
}

// Sections lists every section the index references, in index order.
func (x *Index) Sections() []Located {
	refs := x.sectionRefs()
	out := make([]Located, len(refs))
	for k, r := range refs {
		out[k] = x.locate(r)
	}
	return out
}

// A sectionRef names a section by position; Validate describes one only
// when it reports an error, since formatting a description for each of the
// tens of thousands of sections of a large model took most of Open's time.
type sectionRef struct {
	kind uint8 // refSource, refBlob, refGroup or refAux
	i, j int   // source, blob or tensor; group or aux
	Section
}

const (
	refSource uint8 = iota
	refBlob
	refGroup
	refAux
)

func (x *Index) sectionRefs() []sectionRef {
	n := len(x.Sources) + len(x.Blobs)
	for i := range x.Tensors {
		n += len(x.Tensors[i].Groups) + len(x.Tensors[i].Aux)
	}
	out := make([]sectionRef, 0, n)
	for i, s := range x.Sources {
		out = append(out, sectionRef{refSource, i, 0, s.Header})
	}
	for i, b := range x.Blobs {
		if b.Section != nil {
			out = append(out, sectionRef{refBlob, i, 0, *b.Section})
		}
	}
	for i := range x.Tensors {
		t := &x.Tensors[i]
		for j, g := range t.Groups {
			out = append(out, sectionRef{refGroup, i, j, g.Section})
		}
		for j, a := range t.Aux {
			if a.Inline == nil {
				out = append(out, sectionRef{refAux, i, j, a.Section})
			}
		}
	}
	return out
}

// locate describes the section r refers to.
func (x *Index) locate(r sectionRef) Located {
	switch r.kind {
	case refSource:
		return Located{What: fmt.Sprintf("source %d (%s) header", r.i, x.Sources[r.i].Name), Section: r.Section}
	case refBlob:
		return Located{What: fmt.Sprintf("blob %d (%s)", r.i, x.Blobs[r.i].Codec), Section: r.Section}
	case refGroup:
		t := &x.Tensors[r.i]
		return Located{What: fmt.Sprintf("tensor %q group %d", t.Name, r.j), Tensor: t.Name, Section: r.Section}
	}
	t := &x.Tensors[r.i]
	return Located{What: fmt.Sprintf("tensor %q aux %q", t.Name, t.Aux[r.j].Name), Tensor: t.Name, Section: r.Section}
}

// Validate checks the rules of FORMAT.md that span the index: unique
// names, known dtypes, consistent shapes, views and groups, limits, and
// the section layout: sorted by offset, sections are packed back to back,
// each at the alignment after the previous one's end, from the end of the
// preamble to the index. So every byte outside the sections is padding of
// less than one alignment unit, which nwc-verify checks is zero.
func (x *Index) Validate(lay Layout, lim Limits) error {
	lim = lim.WithDefaults()
	for i, s := range x.Sources {
		if s.Name == "" {
			return Errorf(-1, "source %d has an empty name", i)
		}
	}
	for i, b := range x.Blobs {
		if b.Codec == "" {
			return Errorf(-1, "blob %d has an empty codec", i)
		}
	}
	names := make(map[string]struct{}, len(x.Tensors))
	for i := range x.Tensors {
		t := &x.Tensors[i]
		if _, dup := names[t.Name]; dup {
			return TensorErrorf(t.Name, -1, "duplicate tensor name")
		}
		names[t.Name] = struct{}{}
		if err := ValidateTensor(t, len(x.Blobs), lim); err != nil {
			return err
		}
	}
	return x.validateLayout(x.sectionRefs(), lay)
}

// ValidateTensor checks the rules for one tensor entry in a file with
// nblobs blobs, except those about the section layout, in the order of
// FORMAT.md §6: the entry's keys in the order of §5.2's table.
func ValidateTensor(t *Tensor, nblobs int, lim Limits) error {
	lim = lim.WithDefaults()
	if t.Name == "" {
		return TensorErrorf(t.Name, -1, "empty tensor name")
	}
	if !t.DType.Valid() {
		return fmt.Errorf("tensor %q: %w", t.Name, UnsupportedError("dtype "+string(t.DType)))
	}
	n := uint64(1)
	for _, d := range t.Shape {
		var ok bool
		if n, ok = mulCheck(n, d); !ok {
			return TensorErrorf(t.Name, -1, "shape %v overflows", t.Shape)
		}
	}
	size, ok := mulCheck(n, uint64(t.DType.Size()))
	if !ok || size > lim.MaxTensorBytes {
		return fmt.Errorf("tensor %q: %w", t.Name, &LimitError{What: "tensor bytes", Value: size, Limit: lim.MaxTensorBytes})
	}
	if t.Codec == "" {
		return TensorErrorf(t.Name, -1, "empty codec id")
	}
	if t.Blob < -1 || t.Blob >= nblobs {
		return TensorErrorf(t.Name, -1, "blob %d out of range (%d blobs)", t.Blob, nblobs)
	}
	if v, ok := mulCheck(t.View[0], t.View[1]); !ok || v != n {
		return TensorErrorf(t.Name, -1, "view %v does not hold the %d elements of shape %v", t.View, n, t.Shape)
	}
	if n == 0 && len(t.Groups) != 0 {
		return TensorErrorf(t.Name, -1, "empty tensor has %d groups", len(t.Groups))
	}
	var prev uint64
	for j, g := range t.Groups {
		if g.End <= prev || g.End-prev > MaxGroupElements {
			return TensorErrorf(t.Name, -1, "group %d covers elements [%d, %d): empty, backwards or over %d elements", j, prev, g.End, MaxGroupElements)
		}
		prev = g.End
	}
	if prev != n {
		return TensorErrorf(t.Name, -1, "groups cover %d of %d elements", prev, n)
	}
	for j, a := range t.Aux {
		if a.Name == "" || (j > 0 && t.Aux[j-1].Name == a.Name) {
			return TensorErrorf(t.Name, -1, "aux section names must be non-empty and unique")
		}
		if a.Inline != nil && len(a.Inline) == 0 {
			return TensorErrorf(t.Name, -1, "inline aux %q is empty", a.Name)
		}
	}
	return nil
}

func (x *Index) validateLayout(secs []sectionRef, lay Layout) error {
	if lay.AlignLog2 < MinAlignLog2 || lay.AlignLog2 > MaxAlignLog2 {
		return Errorf(-1, "alignment 2^%d outside [2^%d, 2^%d]", lay.AlignLog2, MinAlignLog2, MaxAlignLog2)
	}
	slices.SortStableFunc(secs, func(a, b sectionRef) int { return cmp.Compare(a.Offset, b.Offset) })
	next := AlignUp(PreambleLen, lay.AlignLog2)
	for _, r := range secs {
		end := r.Offset + r.Length
		if r.Length != 0 && r.Offset == next && end >= r.Offset && end <= lay.IndexOffset {
			next = AlignUp(end, lay.AlignLog2)
			continue
		}
		s := x.locate(r)
		if s.Length == 0 {
			return &FormatError{Off: int64(s.Offset), Tensor: s.Tensor, Msg: s.What + " is empty"}
		}
		if s.Offset != next {
			return &FormatError{Off: int64(min(s.Offset, 1<<63-1)), Tensor: s.Tensor,
				Msg: fmt.Sprintf("%s starts at %#x, want %#x (sections are packed in offset order, each aligned to %d bytes, without overlap)", s.What, s.Offset, next, 1<<lay.AlignLog2)}
		}
		return &FormatError{Off: int64(s.Offset), Tensor: s.Tensor, Msg: fmt.Sprintf("%s (length %d) runs past the index at %#x", s.What, s.Length, lay.IndexOffset)}
	}
	if lay.IndexOffset != next {
		return Errorf(int64(min(lay.IndexOffset, 1<<63-1)), "index starts at %#x, want %#x (aligned after the last section)", lay.IndexOffset, next)
	}
	return nil
}
