package convert

import (
	"context"
	"fmt"
	"math/bits"

	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/writer"
)

// MergeStats summarizes a Merge.
type MergeStats struct {
	Parts    int
	Tensors  int
	OutBytes int64
}

// Merge joins the parts of the sharded .nwc r (see reader.OpenSet) into
// one file at out without re-encoding: the metadata (without
// format.MetaPart), the source headers and every tensor's encoded
// sections are copied, tensor by tensor in part order, with the writer
// options the parts were written with. The result is byte for byte the
// file ToNWCPlanned writes in one process from the same plan. progress, if
// not nil, is called after each tensor with the tensors done and their
// total. The file appears at out only when complete.
func Merge(ctx context.Context, r *reader.Reader, out string, progress func(done, total int)) (*MergeStats, error) {
	x := r.ShardIndex()
	if x == nil {
		return nil, fmt.Errorf("convert: %w: merge needs a sharded .nwc (an index file or a directory holding one)", ErrPlan)
	}
	var wo writer.Options
	switch a := r.Alignment(); a {
	case 1:
		wo.Packed = true
	default:
		wo.AlignLog2 = uint8(bits.TrailingZeros(uint(a)))
	}
	wo.PlainIndex = x.Metadata.IndexUncompressed
	f, err := writer.Create(out, &wo)
	if err != nil {
		return nil, err
	}
	defer f.Abort()
	w := f.Writer
	if err := w.SetMetadata(r.Metadata()); err != nil {
		return nil, err
	}
	for i, s := range r.Index().Sources {
		h, err := r.SourceHeader(i)
		if err != nil {
			return nil, err
		}
		if err := w.AddSource(s.Name, h); err != nil {
			return nil, err
		}
	}
	ts := r.Tensors()
	for k, t := range ts {
		enc, err := t.Encoded(ctx)
		if err != nil {
			return nil, err
		}
		if err := w.WriteEncoded(t.Name(), t.DType(), t.Shape(), t.Codec(), enc); err != nil {
			return nil, err
		}
		if progress != nil {
			progress(k+1, len(ts))
		}
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	return &MergeStats{Parts: x.Metadata.Parts, Tensors: len(ts), OutBytes: f.Size()}, nil
}
