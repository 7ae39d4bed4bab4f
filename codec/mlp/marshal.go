package mlp

import (
	"encoding/binary"
	"math"
	"strconv"
)

// Serialized network layout (all integers and floats little-endian; see
// FORMAT.md, Appendix A.3):
//
//	byte      version, serialVersion
//	byte      L, the number of layers, in [1, MaxLayers]
//	L × 5     layer headers: uint16 In, uint16 Out, byte flags
//	          (bit 0 ReLU, bit 1 Residual, other bits zero)
//	uint16    E, the number of embedding levels: 0 (no embedding) or
//	          [1, MaxLevels]
//	float32s  per layer, W (Out×In, row-major) then B (Out); then the E
//	          embedding vectors, each as wide as the residual layers
//
// Nothing follows. Every parameter must be finite. The float bits are
// stored as they are (−0 stays −0), so a network has exactly one
// serialization.
const (
	serialVersion  = 1
	headerLen      = 2 // version, layer count; + layers × layerHeaderLen + levelsLen
	layerHeaderLen = 5 // uint16 In, uint16 Out, byte flags
	levelsLen      = 2 // uint16 E
)

// AppendBinary appends the serialized network to b. It implements
// encoding.BinaryAppender and fails if the network does not validate.
func (n *Net) AppendBinary(b []byte) ([]byte, error) {
	if err := n.Validate(); err != nil {
		return b, err
	}
	b = append(b, serialVersion, byte(len(n.Layers)))
	for _, l := range n.Layers {
		flags := byte(0)
		if l.ReLU {
			flags |= flagReLU
		}
		if l.Residual {
			flags |= flagResidual
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(l.In))
		b = binary.LittleEndian.AppendUint16(b, uint16(l.Out))
		b = append(b, flags)
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(n.Embed)))
	for _, l := range n.Layers {
		b = appendFloats(b, l.W)
		b = appendFloats(b, l.B)
	}
	for _, e := range n.Embed {
		b = appendFloats(b, e)
	}
	return b, nil
}

// MarshalBinary returns the serialized network. It implements
// encoding.BinaryMarshaler.
func (n *Net) MarshalBinary() ([]byte, error) { return n.AppendBinary(nil) }

// UnmarshalBinary replaces n with the network serialized in data, which
// must contain nothing else. It implements encoding.BinaryUnmarshaler.
// Errors satisfy errors.Is(err, ErrNet) and errors.Is(err,
// format.ErrFormat) and carry the offending offset.
func (n *Net) UnmarshalBinary(data []byte) error {
	m, used, err := Parse(data)
	if err != nil {
		return err
	}
	if used != len(data) {
		return netErr(used, "trailing data after the network")
	}
	*n = *m
	return nil
}

// Parse reads a serialized network from the start of b, which may hold
// more data after it, and returns the network and the number of bytes it
// occupies. The input is untrusted: every field is checked, and nothing is
// allocated before the bytes that justify it are known to be present.
// Errors satisfy errors.Is(err, ErrNet) and errors.Is(err,
// format.ErrFormat).
func Parse(b []byte) (*Net, int, error) {
	if len(b) < headerLen {
		return nil, 0, netErr(len(b), "truncated header")
	}
	if b[0] != serialVersion {
		return nil, 0, netErr(0, "unknown version "+strconv.Itoa(int(b[0])))
	}
	nl := int(b[1])
	if nl == 0 || nl > MaxLayers {
		return nil, 0, netErr(1, "layer count "+strconv.Itoa(nl)+" out of range [1, "+strconv.Itoa(MaxLayers)+"]")
	}
	off := headerLen
	if len(b)-off < nl*layerHeaderLen+levelsLen {
		return nil, 0, netErr(len(b), "truncated layer headers")
	}
	n := &Net{Layers: make([]Layer, nl)} // nl ≤ MaxLayers
	for i := range n.Layers {
		l := &n.Layers[i]
		l.In = int(binary.LittleEndian.Uint16(b[off:]))
		l.Out = int(binary.LittleEndian.Uint16(b[off+2:]))
		flags := b[off+4]
		if flags&^flagsKnown != 0 {
			return nil, 0, netErr(off+4, "layer "+strconv.Itoa(i)+": unknown flags")
		}
		l.ReLU = flags&flagReLU != 0
		l.Residual = flags&flagResidual != 0
		off += layerHeaderLen
	}
	levels := int(binary.LittleEndian.Uint16(b[off:]))
	if levels > MaxLevels {
		return nil, 0, netErr(off, "embedding level count "+strconv.Itoa(levels)+" over "+strconv.Itoa(MaxLevels))
	}
	if levels > 0 {
		n.Embed = make([][]float32, levels) // levels ≤ MaxLevels
	}
	if err := n.validateShape(off); err != nil {
		return nil, 0, err
	}
	off += levelsLen

	// The shape is valid, so the parameter count is at most MaxParams;
	// check the bytes are there before allocating for them.
	width := n.embedWidth()
	params := levels * width
	for _, l := range n.Layers {
		params += l.In*l.Out + l.Out
	}
	if len(b)-off < 4*params {
		return nil, 0, netErr(len(b), "truncated parameters: need "+strconv.Itoa(4*params)+" bytes")
	}
	all := make([]float32, params)
	for i := range all {
		v := math.Float32frombits(binary.LittleEndian.Uint32(b[off+4*i:]))
		if v != v || math.IsInf(float64(v), 0) {
			return nil, 0, netErr(off+4*i, "non-finite parameter")
		}
		all[i] = v
	}
	take := func(k int) []float32 {
		s := all[:k:k]
		all = all[k:]
		return s
	}
	for i := range n.Layers {
		l := &n.Layers[i]
		l.W = take(l.In * l.Out)
		l.B = take(l.Out)
	}
	for i := range n.Embed {
		n.Embed[i] = take(width)
	}
	return n, off + 4*params, nil
}

func appendFloats(b []byte, v []float32) []byte {
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}
