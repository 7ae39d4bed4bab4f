package codec

import (
	"fmt"
	"math"

	"github.com/nwcodec/nwc/codec/lossless"
	"github.com/nwcodec/nwc/format"
)

// Lossless is the id of the bit-exact codec that splits elements into
// exponent and mantissa byte streams and entropy codes each one.
const Lossless = "lossless"

type losslessCodec struct{}

func init() {
	RegisterEncoder(Lossless, losslessCodec{})
	RegisterDecoder(Lossless, losslessCodec{})
}

func (losslessCodec) Encode(t *Tensor, opts *EncodeOptions) (*Encoded, error) {
	raw, err := rawCodec{}.Encode(t, opts)
	if err != nil {
		return nil, err
	}
	for i := range raw.Groups {
		g := &raw.Groups[i]
		if g.Data, err = lossless.Compress(nil, g.Data, string(t.DType)); err != nil {
			return nil, err
		}
	}
	return raw, nil
}

func (losslessCodec) NewDecoder(t *format.Tensor, env Env) (GroupDecoder, error) {
	if t.Params != nil {
		return nil, format.TensorErrorf(t.Name, -1, "codec lossless takes no parameters")
	}
	if len(t.Aux) != 0 {
		return nil, format.TensorErrorf(t.Name, -1, "codec lossless takes no aux data")
	}
	if t.View != DefaultView(t.Shape) {
		return nil, format.TensorErrorf(t.Name, -1, "codec lossless: view %v, want %v", t.View, DefaultView(t.Shape))
	}
	return losslessDecoder{dtype: string(t.DType), size: t.DType.Size()}, nil
}

type losslessDecoder struct {
	dtype string
	size  int
}

// CheckGroup checks the payload's header and block descriptors against n
// elements: a payload shorter than its blocks need is refused before the
// reader allocates the group.
func (d losslessDecoder) CheckGroup(i int, payload []byte, n uint64) error {
	if n > math.MaxInt {
		return &format.FormatError{Off: -1, Msg: fmt.Sprintf("codec lossless: group of %d elements", n)}
	}
	if err := lossless.CheckHeader(payload, d.dtype, int(n)); err != nil {
		return &format.FormatError{Off: -1, Msg: "codec lossless: " + err.Error()}
	}
	return nil
}

func (d losslessDecoder) DecodeGroup(i int, payload, dst []byte) error {
	out, err := lossless.Decompress(dst[:0], payload, d.dtype, len(dst)/d.size)
	if err != nil {
		return &format.FormatError{Off: -1, Msg: "codec lossless: " + err.Error()}
	}
	if len(out) != len(dst) || &out[0] != &dst[0] {
		copy(dst, out)
	}
	return nil
}
