package spec

import (
	"fmt"
)

// decodeTensor decodes one tensor entry under its codec (FORMAT.md §7):
// its bytes in the original dtype and, for a lossy codec, the fp32 values
// they were converted from.
func decodeTensor(t *tensorEntry, env *fileEnv) ([]byte, []float32, error) {
	switch t.codec {
	case "raw", "lossless", "ecsq", "tcq", "rtn", "q4k":
		// Only nwc reads a blob (§5.2).
		if t.blob >= 0 {
			return nil, nil, formatErr("codec %s takes no blob", t.codec)
		}
	}
	switch t.codec {
	case "raw", "lossless":
		b, err := decodeBitExact(t, env)
		return b, nil, err
	case "ecsq", "tcq":
		return decodeECSQ(t, env, t.codec == "tcq")
	case "rtn":
		return decodeRTN(t, env)
	case "q4k":
		return decodeQ4K(t, env)
	case "nwc":
		return decodeNWC(t, env)
	}
	return nil, nil, fmt.Errorf("%w: codec %q", ErrUnsupported, t.codec)
}

// defaultView is the view of §5.2: [shape[0], ∏ shape[1:]] for rank ≥ 2,
// [1, n] for rank 1, [1, 1] for a scalar.
func defaultView(shape []uint64) [2]uint64 {
	switch len(shape) {
	case 0:
		return [2]uint64{1, 1}
	case 1:
		return [2]uint64{1, shape[0]}
	}
	rest := uint64(1)
	for _, d := range shape[1:] {
		rest *= d
	}
	return [2]uint64{shape[0], rest}
}

// groupStart is the first element of group i.
func (t *tensorEntry) groupStart(i int) uint64 {
	if i == 0 {
		return 0
	}
	return t.groups[i-1].end
}

// decodeBitExact decodes raw (§7.1) and lossless (§7.2): no params, aux
// or blob, the default view; a raw group is its elements' bytes, a
// lossless group one lossless frame of its elements.
func decodeBitExact(t *tensorEntry, env *fileEnv) ([]byte, error) {
	if t.params != nil {
		return nil, formatErr("codec %s takes no params", t.codec)
	}
	if t.view != defaultView(t.shape) {
		return nil, formatErr("codec %s: view %v, want %v", t.codec, t.view, defaultView(t.shape))
	}
	size := uint64(dtypeSize(t.dtype))
	if t.codec == "raw" {
		for i, g := range t.groups {
			if g.length != (g.end-t.groupStart(i))*size {
				return nil, formatErr("codec raw: group %d has %d bytes for %d elements", i, g.length, g.end-t.groupStart(i))
			}
		}
	}
	if len(t.aux) != 0 || t.blob >= 0 {
		return nil, formatErr("codec %s takes no aux data and no blob", t.codec)
	}
	var out []byte
	for i, g := range t.groups {
		payload, err := env.section(g.section)
		if err != nil {
			return nil, err
		}
		if t.codec == "raw" {
			out = append(out, payload...)
			continue
		}
		b, err := Lossless(t.dtype, g.end-t.groupStart(i), payload)
		if err != nil {
			return nil, fmt.Errorf("group %d: %w", i, err)
		}
		if uint64(len(b)) != (g.end-t.groupStart(i))*size {
			return nil, formatErr("codec lossless: group %d decodes to %d bytes", i, len(b))
		}
		out = append(out, b...)
	}
	if out == nil {
		out = []byte{}
	}
	return out, nil
}
