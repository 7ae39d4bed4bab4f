package neural

import (
	"encoding/binary"

	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/format"
)

// CheckGroup refuses a payload far shorter than the tensor's tables allow
// for the latents of group i (half of rans.Table.MinBits, less 512 bits,
// per level stream), before the reader allocates the group and
// DecodeGroup its scratch: a truncated or forged payload of a few bytes
// cannot stand for a group of 2^28 weights.
func (d *decoder) CheckGroup(i int, payload []byte, n uint64) error {
	if i < 0 || i >= len(d.ends) {
		return format.TensorErrorf(d.name, -1, "codec nwc: group %d of %d", i, len(d.ends))
	}
	r0 := 0
	if i > 0 {
		r0 = d.ends[i-1]
	}
	b0, b1 := r0/chunk.Rows, chunk.Chunks(d.ends[i])
	groupRows := min(b1*chunk.Rows, d.layout.Rows) - b0*chunk.Rows
	qs := streamLevels(&d.tabs)
	for k, q := range qs {
		stream := payload
		if k < len(qs)-1 {
			l, used := binary.Uvarint(payload)
			if used <= 0 || l > uint64(len(payload)-used) {
				return format.TensorErrorf(d.name, -1, "codec nwc: group %d: level %d stream length is corrupt", i, q)
			}
			stream, payload = payload[used:used+int(l)], payload[used+int(l):]
		}
		count := d.colsOf[q] * groupRows
		if need := d.tabs[q].MinBits(count); 16*float64(len(stream))+512 < need {
			return format.TensorErrorf(d.name, -1, "codec nwc: group %d: level %d stream of %d bytes cannot hold %d latents", i, q, len(stream), count)
		}
	}
	return nil
}
