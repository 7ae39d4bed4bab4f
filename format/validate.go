package format

import (
	"fmt"
	"sort"
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
	var out []Located
	for i, s := range x.Sources {
		out = append(out, Located{What: fmt.Sprintf("source %d (%s) header", i, s.Name), Section: s.Header})
	}
	for i, b := range x.Blobs {
		if b.Section != nil {
			out = append(out, Located{What: fmt.Sprintf("blob %d (%s)", i, b.Codec), Section: *b.Section})
		}
	}
	for i := range x.Tensors {
		t := &x.Tensors[i]
		for j, g := range t.Groups {
			out = append(out, Located{What: fmt.Sprintf("tensor %q group %d", t.Name, j), Tensor: t.Name, Section: g.Section})
		}
		for _, a := range t.Aux {
			if a.Inline == nil {
				out = append(out, Located{What: fmt.Sprintf("tensor %q aux %q", t.Name, a.Name), Tensor: t.Name, Section: a.Section})
			}
		}
	}
	return out
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
	return validateLayout(x.Sections(), lay)
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

func validateLayout(secs []Located, lay Layout) error {
	if lay.AlignLog2 < MinAlignLog2 || lay.AlignLog2 > MaxAlignLog2 {
		return Errorf(-1, "alignment 2^%d outside [2^%d, 2^%d]", lay.AlignLog2, MinAlignLog2, MaxAlignLog2)
	}
	sort.SliceStable(secs, func(i, j int) bool { return secs[i].Offset < secs[j].Offset })
	next := AlignUp(PreambleLen, lay.AlignLog2)
	for _, s := range secs {
		if s.Length == 0 {
			return &FormatError{Off: int64(s.Offset), Tensor: s.Tensor, Msg: s.What + " is empty"}
		}
		if s.Offset != next {
			return &FormatError{Off: int64(min(s.Offset, 1<<63-1)), Tensor: s.Tensor,
				Msg: fmt.Sprintf("%s starts at %#x, want %#x (sections are packed in offset order, each aligned to %d bytes, without overlap)", s.What, s.Offset, next, 1<<lay.AlignLog2)}
		}
		end := s.Offset + s.Length
		if end < s.Offset || end > lay.IndexOffset {
			return &FormatError{Off: int64(s.Offset), Tensor: s.Tensor, Msg: fmt.Sprintf("%s (length %d) runs past the index at %#x", s.What, s.Length, lay.IndexOffset)}
		}
		next = AlignUp(end, lay.AlignLog2)
	}
	if lay.IndexOffset != next {
		return Errorf(int64(min(lay.IndexOffset, 1<<63-1)), "index starts at %#x, want %#x (aligned after the last section)", lay.IndexOffset, next)
	}
	return nil
}
