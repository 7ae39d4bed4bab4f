package reader

import (
	"context"
	"crypto/sha256"
	"fmt"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/format"
)

// Encoded returns the tensor as its codec wrote it: parameters, view,
// every group's payload, every auxiliary section and its blob (the
// built-in copy, marked Ref, for a blob the file only references), each
// checked against its CRC32C (and the blob against its SHA-256). Handing
// it to writer.Writer.WriteEncoded copies the tensor into another file
// without decoding it: nwc merge joins the parts of a sharded file so.
// It holds the whole encoded tensor in memory; ctx is checked between
// sections.
func (t *Tensor) Encoded(ctx context.Context) (*codec.Encoded, error) {
	e := t.e
	enc := &codec.Encoded{Params: cloneParams(e.Params), View: e.View}
	for i, g := range e.Groups {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		b, err := t.r.readSection(g.Section, t.groupWhat(i))
		if err != nil {
			return nil, err
		}
		enc.Groups = append(enc.Groups, codec.EncodedGroup{End: g.End, Data: b})
	}
	for _, a := range e.Aux {
		b := append([]byte(nil), a.Inline...)
		if a.Inline == nil {
			var err error
			if b, err = t.r.readSection(a.Section, fmt.Sprintf("tensor %q aux %q", e.Name, a.Name)); err != nil {
				return nil, err
			}
		}
		enc.Aux = append(enc.Aux, codec.NamedBytes{Name: a.Name, Data: b})
	}
	if e.Blob >= 0 {
		b := t.r.index.Blobs[e.Blob]
		bd := &codec.BlobData{Codec: b.Codec}
		if b.Section == nil {
			data, ok := codec.BuiltinBlob(b.Codec, b.SHA256)
			if !ok {
				return nil, format.UnsupportedError(fmt.Sprintf("built-in %s blob %x", b.Codec, b.SHA256[:8]))
			}
			bd.Data, bd.Ref = data, true
		} else {
			data, err := t.r.readSection(*b.Section, fmt.Sprintf("blob %d", e.Blob))
			if err != nil {
				return nil, err
			}
			if err := checkBlobSum(e.Blob, b, sha256.Sum256(data)); err != nil {
				return nil, err
			}
			bd.Data = data
		}
		enc.Blob = bd
	}
	return enc, nil
}

// cloneParams copies a tensor's parameters, keeping nil nil: the index
// tells absent parameters from empty ones.
func cloneParams(p []byte) []byte {
	if p == nil {
		return nil
	}
	return append([]byte{}, p...)
}
