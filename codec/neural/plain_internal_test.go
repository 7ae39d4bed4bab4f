package neural

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/x448/float16"

	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/format"
)

// sectionEnv serves a hand-built tensor's auxiliary sections.
type sectionEnv map[string][]byte

func (e sectionEnv) Aux(name string) ([]byte, error) {
	if b, ok := e[name]; ok {
		return b, nil
	}
	return nil, format.Errorf(-1, "no aux %q", name)
}

func (sectionEnv) Blob(func([]byte) (any, error)) (any, error) {
	return nil, format.Errorf(-1, "no blob")
}

// plainCase describes a plain tensor built from random latents.
type plainCase struct {
	rows, cols, groupRows int
	dt                    format.DType
	trellis, levels       bool
	offset                uint8
	step                  float32
}

// buildPlain encodes random latents of c — mostly small, some far outside
// the reconstruction tables and the rANS tables — with random column
// scales, some 0, and returns the tensor entry, its sections and the
// group payloads.
func buildPlain(t *testing.T, c plainCase, seed uint64) (*format.Tensor, sectionEnv, [][]byte) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	p := Params{Plain: true, Trellis: c.trellis, Offset: c.offset}
	p.setLevels(c.step)
	nb := chunk.Chunks(c.rows)
	y := make([]int32, nb*c.cols*chunk.Rows)
	lv := make([]uint8, nb*c.cols)
	var levels []uint8
	if c.levels {
		levels = make([]uint8, c.cols)
		for j := range levels {
			levels[j] = uint8(r.IntN(NumLevels))
		}
		levels[0] = 1 // some level is nonzero
	}
	for ci := range lv {
		lv[ci] = levelOf(levels, ci%c.cols)
		for i := range validRows(ci/c.cols, c.rows) {
			k := int32(math.Round(r.NormFloat64() * 6))
			switch r.IntN(50) {
			case 0:
				k = int32(r.IntN(1<<20)) - 1<<19
			case 1:
				k = plainSpan*int32(1-2*r.IntN(2)) - int32(r.IntN(2))
			}
			y[ci*chunk.Rows+i] = k
		}
	}
	tabs, tabBytes, err := BuildTables(y, lv, c.rows, c.cols)
	if err != nil {
		t.Fatal(err)
	}
	h := make([]uint16, c.cols)
	for j := range h {
		if r.IntN(5) > 0 {
			h[j] = float16.Fromfloat32(float32(r.ExpFloat64())).Bits()
		}
	}
	scales, err := chunk.AppendScales(nil, h)
	if err != nil {
		t.Fatal(err)
	}
	env := sectionEnv{chunk.AuxScales: scales, AuxTables: tabBytes}
	e := &format.Tensor{Name: "w", DType: c.dt, Shape: []uint64{uint64(c.rows), uint64(c.cols)}, Codec: ID,
		Params: p.Marshal(), View: [2]uint64{uint64(c.rows), uint64(c.cols)}, Blob: -1}
	if levels != nil {
		env[chunk.AuxLevels] = chunk.AppendLevels(nil, levels)
	}
	for _, name := range slices.Sorted(maps.Keys(env)) {
		e.Aux = append(e.Aux, format.NamedSection{Name: name})
	}
	colLv := make([]uint8, c.cols)
	for j := range colLv {
		colLv[j] = levelOf(levels, j)
	}
	var payloads [][]byte
	for r0 := 0; r0 < c.rows; r0 += c.groupRows {
		r1 := min(r0+c.groupRows, c.rows)
		b0, b1 := r0/chunk.Rows, chunk.Chunks(r1)
		pl, err := EncodeLatents(y[b0*c.cols*chunk.Rows:b1*c.cols*chunk.Rows], colLv, b0, b1, c.rows, c.cols, &tabs)
		if err != nil {
			t.Fatal(err)
		}
		payloads = append(payloads, pl)
		e.Groups = append(e.Groups, format.Group{End: uint64(r1 * c.cols)})
	}
	return e, env, payloads
}

// TestPlainFusedEqualsGeneral checks that the fused plain path stores the
// same bytes as reconstructing each group in float32 and storing it with
// chunk.Layout.Store, for odd shapes, ragged chunks, several groups,
// importance levels, with and without a trellis, escapes, latents beyond
// the tables, columns of scale 0 and steps so large that values overflow.
func TestPlainFusedEqualsGeneral(t *testing.T) {
	var cases []plainCase
	for _, dt := range []format.DType{format.BF16, format.F32, format.F16, format.F64} {
		for _, sh := range [][3]int{{1, 1, 16}, {16, 3, 16}, {17, 2, 16}, {40, 7, 16}, {100, 33, 32}, {64, 64, 64}, {35, 5, 48}} {
			for _, tr := range []bool{false, true} {
				for _, lv := range []bool{false, true} {
					cases = append(cases, plainCase{rows: sh[0], cols: sh[1], groupRows: sh[2], dt: dt, trellis: tr,
						levels: lv && sh[1] > 1, offset: uint8(sh[0] % 100), step: 0.25})
				}
			}
		}
		cases = append(cases, plainCase{rows: 48, cols: 9, groupRows: 16, dt: dt, trellis: true, offset: 13, step: 3e38})
	}
	for n, c := range cases {
		t.Run(fmt.Sprintf("%s-%dx%d-g%d-trellis=%v-levels=%v-step=%g", c.dt, c.rows, c.cols, c.groupRows, c.trellis, c.levels, c.step), func(t *testing.T) {
			e, env, payloads := buildPlain(t, c, uint64(n))
			gd, err := nwcDecoder{}.NewDecoder(e, env)
			if err != nil {
				t.Fatal(err)
			}
			d := gd.(*decoder)
			size := c.dt.Size()
			start := 0
			for i, pl := range payloads {
				end := int(e.Groups[i].End)
				fused := make([]byte, (end-start)*size)
				general := make([]byte, len(fused))
				if err := d.decodeGroup(i, pl, fused, true); err != nil {
					t.Fatal(err)
				}
				if err := d.decodeGroup(i, pl, general, false); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(fused, general) {
					for k := range fused {
						if fused[k] != general[k] {
							t.Fatalf("group %d: byte %d (element %d) is %#x, want %#x", i, k, k/size, fused[k], general[k])
						}
					}
				}
				start = end
			}
		})
	}
}
