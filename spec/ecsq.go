package spec

import (
	"encoding/binary"
	"math"
)

// ecsq and tcq (FORMAT.md §7.4).

// ecsqLevelFactor holds the level step factors m_k of §7.4.2 as fp32 bits.
var ecsqLevelFactor = [4]uint32{0x3f800000, 0x3f19999a, 0x3eb851ec, 0x3e4ccccd}

// trellisNext is the state machine of §7.4.7: next[σ][parity].
var trellisNext = [4][2]int{{0, 2}, {2, 0}, {1, 3}, {3, 1}}

// scalarValue is the reconstruction of §7.4.5: 0 for q = 0, else
// ±fl(fl(fl(|q|) − off)·step).
func scalarValue(q int32, off, step float32) float32 {
	if q == 0 {
		return 0
	}
	a := int64(q)
	if a < 0 {
		a = -a
	}
	v := float32(float32(float32(a)-off) * step)
	if q < 0 {
		v = -v
	}
	return v
}

func decodeECSQ(t *tensorEntry, env *fileEnv, trellis bool) ([]byte, []float32, error) {
	var step float32
	var offset uint64
	var transposed bool
	err := parseParamMap(t, map[string]paramReader{
		"step": func(m *msgReader, k string) error {
			// Only the 9-byte float64 encoding (0xcb), of a value that is
			// an fp32 in [2^-16, 1024].
			raw, err := m.raw(k)
			if err != nil {
				return err
			}
			if len(raw) != 9 || raw[0] != 0xcb {
				return formatErr("param step is not a msgpack float64")
			}
			v := math.Float64frombits(binary.BigEndian.Uint64(raw[1:]))
			step = float32(v)
			if float64(step) != v || !(step >= 1.0/65536 && step <= 1024) {
				return formatErr("param step %v is not an fp32 in [2^-16, 1024]", v)
			}
			return nil
		},
		"offset":     uintParam(&offset, 0, 127),
		"transposed": boolParam(&transposed),
	})
	if err != nil {
		return nil, nil, err
	}
	m, err := parseMatrix(t, transposed)
	if err != nil {
		return nil, nil, err
	}
	if err := checkAuxNames(t, "scales", "levels", "table"); err != nil {
		return nil, nil, err
	}
	if t.n == 0 {
		if len(t.aux) != 0 {
			return nil, nil, formatErr("codec %s: empty tensor with aux data", t.codec)
		}
		return []byte{}, []float32{}, nil
	}
	sb, ok, err := env.aux(t, "scales")
	if err != nil || !ok {
		return nil, nil, auxMissing(t, "scales", err)
	}
	scales, err := parseScales(sb, m.cols)
	if err != nil {
		return nil, nil, err
	}
	levels := make([]uint8, m.cols)
	if lb, ok, err := env.aux(t, "levels"); err != nil {
		return nil, nil, err
	} else if ok {
		if levels, err = parseLevels(lb, m.cols); err != nil {
			return nil, nil, err
		}
	}
	// Column steps (§7.4.2).
	var lstep [4]float32
	for k := range lstep {
		lstep[k] = float32(step * math.Float32frombits(ecsqLevelFactor[k]))
	}
	steps := make([]float32, m.cols)
	for j := range steps {
		steps[j] = float32(lstep[levels[j]] * scales[j])
	}
	// Level sets: the distinct levels in increasing order, with their columns.
	var sets [][]int
	for k := range 4 {
		var cols []int
		for j, l := range levels {
			if int(l) == k {
				cols = append(cols, j)
			}
		}
		if cols != nil {
			sets = append(sets, cols)
		}
	}
	// Tables (§7.4.3).
	tb, ok, err := env.aux(t, "table")
	if err != nil || !ok {
		return nil, nil, auxMissing(t, "table", err)
	}
	tables := make([]*ransTable, len(sets))
	for s := range sets {
		tab, used, err := parseRANSTable(tb)
		if err != nil {
			return nil, nil, err
		}
		tables[s], tb = tab, tb[used:]
	}
	if len(tb) != 0 {
		return nil, nil, formatErr("aux table: %d bytes after %d tables", len(tb), len(sets))
	}
	off := float32(offset) / 256
	var w []float32
	for i, g := range t.groups {
		payload, err := env.section(g.section)
		if err != nil {
			return nil, nil, err
		}
		r0, r1 := m.groupRows(i)
		gw := make([]float32, (r1-r0)*m.cols)
		state := make([]int, m.cols) // tcq: 0 at the group's first row
		for s, cols := range sets {
			stream := payload
			if s < len(sets)-1 {
				l, used := uvarint(payload)
				if used <= 0 || l > uint64(len(payload)-used) {
					return nil, nil, formatErr("group %d: bad length of stream %d", i, s)
				}
				stream, payload = payload[used:used+int(l)], payload[used+int(l):]
			}
			q, err := ransDecode(stream, tables[s:s+1], (r1-r0)*len(cols))
			if err != nil {
				return nil, nil, err
			}
			for r := range r1 - r0 {
				for x, j := range cols {
					v := q[r*len(cols)+x]
					o := off
					if trellis {
						if state[j] >= 2 {
							o = float32(off + 0.5)
						}
						state[j] = trellisNext[state[j]][v&1]
					}
					gw[r*m.cols+j] = scalarValue(v, o, steps[j])
				}
			}
		}
		w = append(w, gw...)
	}
	data, vals := storeMatrix(m, t.dtype, w)
	return data, vals, nil
}

// auxMissing is the error for aux data a codec needs: err if reading it
// failed, else a format error.
func auxMissing(t *tensorEntry, name string, err error) error {
	if err != nil {
		return err
	}
	return formatErr("codec %s needs aux %q", t.codec, name)
}
