package spec

import (
	"encoding/binary"
	"math"
)

// The container side of the nwc codec (FORMAT.md §7.7.2–§7.7.4); the
// reconstruction arithmetic is NWCReconstruct (§7.7.5).

// nwcStepFactor holds m_q of §7.7.3 as fp32 bits.
var nwcStepFactor = [4]uint32{0x3f800000, 0x3f181630, 0x3e2f9d53, 0x3df85b42}

func decodeNWC(t *tensorEntry, env *fileEnv) ([]byte, []float32, error) {
	nt := &NWCTensor{}
	transposed, err := parseNWCParams(t.params, nt)
	if err != nil {
		return nil, nil, err
	}
	m, err := parseMatrix(t, transposed)
	if err != nil {
		return nil, nil, err
	}
	if t.n == 0 {
		// Nothing to decode, so nothing may be attached either.
		if len(t.aux) != 0 || t.blob >= 0 {
			return nil, nil, formatErr("codec nwc: empty tensor with aux data or a blob")
		}
		return []byte{}, []float32{}, nil
	}
	if err := checkAuxNames(t, "scales", "levels", "tables"); err != nil {
		return nil, nil, err
	}
	if nt.Plain {
		if t.blob >= 0 {
			return nil, nil, formatErr("codec nwc: a plain tensor references a blob")
		}
	} else {
		b, err := env.blob(t, "nwc")
		if err != nil {
			return nil, nil, err
		}
		if nt.Decoder, nt.Embed, err = parseNWCBlob(b); err != nil {
			return nil, nil, err
		}
	}
	sb, ok, err := env.aux(t, "scales")
	if err != nil || !ok {
		return nil, nil, auxMissing(t, "scales", err)
	}
	if nt.Scales, err = parseScales(sb, m.cols); err != nil {
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
	nt.Levels = levels
	var present [4]bool
	for _, l := range levels {
		present[l] = true
	}
	tb, ok, err := env.aux(t, "tables")
	if err != nil || !ok {
		return nil, nil, auxMissing(t, "tables", err)
	}
	var tables [4]*ransTable
	for q := range 4 {
		if present[q] {
			tab, used, err := parseRANSTable(tb)
			if err != nil {
				return nil, nil, err
			}
			tables[q], tb = tab, tb[used:]
		}
	}
	if len(tb) != 0 {
		return nil, nil, formatErr("aux tables: %d bytes after the tables", len(tb))
	}
	var w []float32
	for i, g := range t.groups {
		payload, err := env.section(g.section)
		if err != nil {
			return nil, nil, err
		}
		r0, r1 := m.groupRows(i)
		rows := r1 - r0 // r0 is a multiple of 16: chunks align with the matrix's
		nb := (rows + chunkRows - 1) / chunkRows
		lat := make([]int32, nb*m.cols*chunkRows)
		var last int
		for q := range 4 {
			if present[q] {
				last = q
			}
		}
		for q := range 4 {
			if !present[q] {
				continue
			}
			stream := payload
			if q != last {
				l, used := uvarint(payload)
				if used <= 0 || l > uint64(len(payload)-used) {
					return nil, nil, formatErr("group %d: bad length of the level %d stream", i, q)
				}
				stream, payload = payload[used:used+int(l)], payload[used+int(l):]
			}
			var cols []int
			for j, l := range levels {
				if int(l) == q {
					cols = append(cols, j)
				}
			}
			y, err := ransDecode(stream, tables[q:q+1], rows*len(cols))
			if err != nil {
				return nil, nil, err
			}
			// Chunk rows top to bottom, the level's columns left to right,
			// the chunk's existing rows top to bottom.
			for b := range nb {
				valid := min(chunkRows, rows-b*chunkRows)
				for _, j := range cols {
					copy(lat[(b*m.cols+j)*chunkRows:], y[:valid])
					y = y[valid:]
				}
			}
		}
		gt := *nt
		gt.Rows, gt.Cols, gt.Latents, gt.GroupStarts = rows, m.cols, lat, nil
		w = append(w, NWCReconstruct(&gt)...)
	}
	data, vals := storeMatrix(m, t.dtype, w)
	return data, vals, nil
}

// parseNWCParams parses nwc params (§7.7.3) into nt's steps, features,
// plain, offset and trellis flags, and returns the transposed flag.
func parseNWCParams(b []byte, nt *NWCTensor) (bool, error) {
	if b == nil {
		return false, formatErr("codec nwc needs params")
	}
	m := &msgReader{b: b}
	seen := map[string]bool{}
	var step float32
	var offset uint64
	var transposed bool
	err := m.mapKeys("nwc params", func(k string) error {
		seen[k] = true
		switch k {
		case "step":
			v, err := m.number(k)
			if err != nil {
				return err
			}
			step = float32(v)
			if float64(step) != v || math.IsInf(v, 0) || !(step > 0) {
				return formatErr("codec nwc: step %v is not a positive finite fp32", v)
			}
			return nil
		case "plain":
			v, err := m.boolean(k)
			nt.Plain = v
			return err
		case "offset":
			v, err := m.uint(k)
			if err != nil {
				return err
			}
			if v > 127 {
				return formatErr("codec nwc: offset %d above 127", v)
			}
			offset = v
			return nil
		case "transposed", "trellis":
			v, err := m.boolean(k)
			if err != nil {
				return err
			}
			if !v {
				return formatErr("codec nwc: %s is present only when true", k)
			}
			if k == "trellis" {
				nt.Trellis = true
			} else {
				transposed = true
			}
			return nil
		}
		return formatErr("codec nwc: unknown param %q", k)
	})
	if err != nil {
		return false, err
	}
	if m.remaining() != 0 {
		return false, formatErr("codec nwc: bytes after the params")
	}
	if !seen["step"] || !seen["plain"] || seen["offset"] != nt.Plain {
		return false, formatErr("codec nwc: params need step, plain, and offset exactly when plain")
	}
	if nt.Trellis && !nt.Plain {
		return false, formatErr("codec nwc: trellis without plain")
	}
	nt.Offset = float32(offset) / 256
	for q := range 4 {
		nt.Steps[q] = float32(step * math.Float32frombits(nwcStepFactor[q]))
		if !(nt.Steps[q] > 0) || math.IsInf(float64(nt.Steps[q]), 0) {
			return false, formatErr("codec nwc: level %d step %v", q, nt.Steps[q])
		}
		nt.Features[q] = float32(float32(math.Float32bits(nt.Steps[q]))*(1.0/(1<<23))) - 127
	}
	return transposed, nil
}

// parseNWCBlob parses a codec blob (§7.7.2): exactly the keys version (1),
// config and decoder, in any order.
func parseNWCBlob(b []byte) ([]MLPLayer, [][]float32, error) {
	m := &msgReader{b: b}
	var version uint64
	var layers []MLPLayer
	var embed [][]float32
	var chunk, latent uint64
	err := m.mapKeys("nwc blob", func(k string) error {
		switch k {
		case "version":
			v, err := m.uint(k)
			version = v
			return err
		case "config":
			cfg := map[string]uint64{}
			err := m.mapKeys("config", func(k string) error {
				v, err := m.uint(k)
				if err != nil {
					return err
				}
				if v > 1024 {
					return formatErr("nwc blob: config %s = %d", k, v)
				}
				switch k {
				case "chunk", "latent", "width", "blocks":
					cfg[k] = v
					return nil
				}
				return formatErr("nwc blob: unknown config key %q", k)
			})
			if err != nil {
				return err
			}
			if len(cfg) != 4 {
				return formatErr("nwc blob: config has %d of its 4 keys", len(cfg))
			}
			chunk, latent = cfg["chunk"], cfg["latent"]
			// The ranges of the Go model's configuration (codec/neural).
			if chunk < 1 || chunk > 64 || latent < 1 || latent > 64 || cfg["width"] < 1 || cfg["blocks"] > 16 {
				return formatErr("nwc blob: config %v out of range", cfg)
			}
			return nil
		case "decoder":
			raw, err := m.bin(k)
			if err != nil {
				return err
			}
			layers, embed, err = ParseMLP(raw)
			return err
		}
		return formatErr("nwc blob: unknown key %q", k)
	})
	if err != nil {
		return nil, nil, err
	}
	if m.remaining() != 0 {
		return nil, nil, formatErr("nwc blob: bytes after the map")
	}
	if version != 1 || layers == nil || chunk == 0 {
		return nil, nil, formatErr("nwc blob: version %d, or a key missing", version)
	}
	if chunk != 16 || latent != 16 {
		return nil, nil, formatErr("nwc blob: chunk %d and latent %d, want 16", chunk, latent)
	}
	if layers[0].In != 17 || layers[len(layers)-1].Out != 16 {
		return nil, nil, formatErr("nwc blob: decoder maps %d → %d values, want 17 → 16", layers[0].In, layers[len(layers)-1].Out)
	}
	if embed != nil && len(embed) != 4 {
		return nil, nil, formatErr("nwc blob: decoder has %d embedding levels, want 4", len(embed))
	}
	return layers, embed, nil
}

// ParseMLP parses a serialized decoder network (Appendix A.3) that is the
// whole of b: its layers and its embedding (nil without one). Every
// violation of A.1 and A.3 is an error wrapping ErrFormat.
func ParseMLP(b []byte) ([]MLPLayer, [][]float32, error) {
	if len(b) < 2 {
		return nil, nil, formatErr("MLP: truncated header")
	}
	if b[0] != 1 {
		return nil, nil, formatErr("MLP: version %d", b[0])
	}
	nl := int(b[1])
	if nl < 1 || nl > 64 {
		return nil, nil, formatErr("MLP: %d layers", nl)
	}
	if len(b) < 2+5*nl+2 {
		return nil, nil, formatErr("MLP: truncated layer headers")
	}
	layers := make([]MLPLayer, nl)
	for i := range layers {
		h := b[2+5*i:]
		l := &layers[i]
		l.In = int(binary.LittleEndian.Uint16(h))
		l.Out = int(binary.LittleEndian.Uint16(h[2:]))
		if h[4]&^3 != 0 {
			return nil, nil, formatErr("MLP: layer %d has unknown flags %#02x", i, h[4])
		}
		l.ReLU, l.Residual = h[4]&1 != 0, h[4]&2 != 0
	}
	levels := int(binary.LittleEndian.Uint16(b[2+5*nl:]))
	if levels > 256 {
		return nil, nil, formatErr("MLP: %d embedding levels", levels)
	}
	width := 0
	params := 0
	for i, l := range layers {
		if l.In < 1 || l.In > 4096 || l.Out < 1 || l.Out > 4096 {
			return nil, nil, formatErr("MLP: layer %d is %d → %d", i, l.In, l.Out)
		}
		if i > 0 && l.In != layers[i-1].Out {
			return nil, nil, formatErr("MLP: layer %d takes %d values, the previous gives %d", i, l.In, layers[i-1].Out)
		}
		if l.Residual {
			if l.In != l.Out {
				return nil, nil, formatErr("MLP: residual layer %d is not square", i)
			}
			if levels > 0 && width != 0 && width != l.In {
				return nil, nil, formatErr("MLP: residual layers of different widths with an embedding")
			}
			width = l.In
		}
		params += l.In*l.Out + l.Out
	}
	if levels > 0 && width == 0 {
		return nil, nil, formatErr("MLP: an embedding without a residual layer")
	}
	if levels == 0 {
		width = 0
	}
	params += levels * width
	if params > 1<<24 {
		return nil, nil, formatErr("MLP: %d parameters", params)
	}
	p := b[2+5*nl+2:]
	if len(p) < 4*params {
		return nil, nil, formatErr("MLP: %d parameter bytes, want %d", len(p), 4*params)
	}
	if len(p) > 4*params {
		return nil, nil, formatErr("MLP: %d bytes after the parameters", len(p)-4*params)
	}
	next := func(n int) ([]float32, error) {
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(p[4*i:]))
			if math.IsNaN(float64(v[i])) || math.IsInf(float64(v[i]), 0) {
				return nil, formatErr("MLP: a parameter is not finite")
			}
		}
		p = p[4*n:]
		return v, nil
	}
	var err error
	for i := range layers {
		if layers[i].W, err = next(layers[i].In * layers[i].Out); err != nil {
			return nil, nil, err
		}
		if layers[i].B, err = next(layers[i].Out); err != nil {
			return nil, nil, err
		}
	}
	var embed [][]float32
	for range levels {
		e, err := next(width)
		if err != nil {
			return nil, nil, err
		}
		embed = append(embed, e)
	}
	return layers, embed, nil
}
