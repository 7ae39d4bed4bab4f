package bench

import (
	"fmt"
	"image/color"
	"io"
	"path/filepath"
	"sort"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/nwcodec/nwc/internal/atomicfile"
)

// Plot draws SQNR against bits per weight, one curve per codec and file,
// with the Gaussian rate–distortion bound (6.02·R dB) and the high-rate
// entropy-coded scalar quantizer (6.02·R − 1.53 dB) for reference, and
// saves it to path (the format follows the extension: .png, .svg, .pdf).
func Plot(pts []Point, path string) error {
	p := plot.New()
	p.Title.Text = "Rate–distortion, bits counted from the file"
	p.X.Label.Text = "bits per weight"
	p.Y.Label.Text = "SQNR (dB)"
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())

	lo, hi := 1e9, 0.0
	type key struct{ file, codec string }
	curves := map[key]plotter.XYs{}
	var keys []key
	for _, pt := range pts {
		k := key{pt.File, pt.Codec}
		if _, ok := curves[k]; !ok {
			keys = append(keys, k)
		}
		curves[k] = append(curves[k], plotter.XY{X: pt.BitsPerWeight, Y: pt.SQNRdB})
		lo, hi = min(lo, pt.BitsPerWeight), max(hi, pt.BitsPerWeight)
	}
	if len(keys) == 0 {
		return fmt.Errorf("bench: nothing to plot")
	}
	// Colour tells the codec, glyph and dash the file: curves of codecs
	// that nearly coincide stay distinguishable.
	files, codecs := map[string]int{}, map[string]int{}
	for _, k := range keys {
		if _, ok := files[k.file]; !ok {
			files[k.file] = len(files)
		}
		if _, ok := codecs[k.codec]; !ok {
			codecs[k.codec] = len(codecs)
		}
	}
	glyphs := []draw.GlyphDrawer{draw.CircleGlyph{}, draw.TriangleGlyph{}, draw.BoxGlyph{}, draw.PlusGlyph{}}
	for _, k := range keys {
		xy := curves[k]
		sort.Slice(xy, func(a, b int) bool { return xy[a].X < xy[b].X })
		l, s, err := plotter.NewLinePoints(xy)
		if err != nil {
			return err
		}
		col := plotColors[codecs[k.codec]%len(plotColors)]
		l.Color, s.Color = col, col
		s.Shape = glyphs[files[k.file]%len(glyphs)]
		s.Radius = vg.Points(3 + float64(codecs[k.codec]%3))
		if files[k.file] > 0 {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		p.Add(l, s)
		name := k.codec
		if len(files) > 1 {
			name = k.file + " " + k.codec
		}
		p.Legend.Add(name, l, s)
	}
	for _, ref := range []struct {
		name   string
		offset float64
		dashes []vg.Length
	}{
		{"Gaussian bound 6.02R", 0, []vg.Length{vg.Points(6), vg.Points(3)}},
		{"ECSQ theory 6.02R−1.53", -1.53, []vg.Length{vg.Points(2), vg.Points(2)}},
	} {
		xy := plotter.XYs{{X: lo - 0.2, Y: 6.02*(lo-0.2) + ref.offset}, {X: hi + 0.2, Y: 6.02*(hi+0.2) + ref.offset}}
		l, err := plotter.NewLine(xy)
		if err != nil {
			return err
		}
		l.Color = color.Gray{Y: 100}
		l.Dashes = ref.dashes
		p.Add(l)
		p.Legend.Add(ref.name, l)
	}
	// As plot.Save, which picks the format from the extension, but the
	// file appears only when complete.
	ext := strings.ToLower(strings.TrimPrefix(filepath.Ext(path), "."))
	wt, err := p.WriterTo(8*vg.Inch, 6*vg.Inch, ext)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, func(w io.Writer) error {
		_, err := wt.WriteTo(w)
		return err
	})
}

var plotColors = []color.Color{
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
	color.RGBA{R: 0xe3, G: 0x77, B: 0xc2, A: 0xff},
	color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
}
