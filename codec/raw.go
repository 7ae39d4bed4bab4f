package codec

import (
	"fmt"

	"github.com/nwcodec/nwc/format"
)

// Raw is the id of the passthrough codec: each group holds the elements'
// bytes exactly as in safetensors.
const Raw = "raw"

type rawCodec struct{}

func init() {
	RegisterEncoder(Raw, rawCodec{})
	RegisterDecoder(Raw, rawCodec{})
}

func (rawCodec) Encode(t *Tensor, opts *EncodeOptions) (*Encoded, error) {
	size := t.DType.Size()
	if size == 0 {
		return nil, format.UnsupportedError("dtype " + string(t.DType))
	}
	n := t.NumElements()
	if uint64(len(t.Data)) != n*uint64(size) {
		return nil, fmt.Errorf("codec raw: tensor %q has %d bytes, want %d", t.Name, len(t.Data), n*uint64(size))
	}
	var gb int
	if opts != nil {
		gb = opts.GroupBytes
	}
	e := &Encoded{View: DefaultView(t.Shape)}
	var start uint64
	for _, end := range SplitElements(n, size, gb, 1) {
		e.Groups = append(e.Groups, EncodedGroup{End: end, Data: t.Data[start*uint64(size) : end*uint64(size)]})
		start = end
	}
	return e, nil
}

func (rawCodec) NewDecoder(t *format.Tensor, env Env) (GroupDecoder, error) {
	if t.Params != nil {
		return nil, format.TensorErrorf(t.Name, -1, "codec raw takes no parameters")
	}
	if len(t.Aux) != 0 {
		return nil, format.TensorErrorf(t.Name, -1, "codec raw takes no aux data")
	}
	if t.View != DefaultView(t.Shape) {
		return nil, format.TensorErrorf(t.Name, -1, "codec raw: view %v, want %v", t.View, DefaultView(t.Shape))
	}
	size := uint64(t.DType.Size())
	for i, g := range t.Groups {
		if g.Length != (g.End-t.GroupStart(i))*size {
			return nil, format.TensorErrorf(t.Name, int64(g.Offset), "codec raw: group %d has %d bytes for %d elements", i, g.Length, g.End-t.GroupStart(i))
		}
	}
	return rawDecoder{}, nil
}

type rawDecoder struct{}

func (rawDecoder) DecodeGroup(i int, payload, dst []byte) error {
	if len(payload) != len(dst) {
		return format.Errorf(-1, "codec raw: group %d has %d bytes, want %d", i, len(payload), len(dst))
	}
	copy(dst, payload)
	return nil
}
