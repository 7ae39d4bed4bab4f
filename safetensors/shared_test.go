package safetensors

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/nwcodec/nwc/internal/shareddata"
)

func TestSharedData(t *testing.T) {
	tests := []struct {
		rel       string
		tensors   int
		first     string
		canonical bool // written by the reference serializer
		meta      map[string]string
	}{
		{"stories260K/stories260K.safetensors", 47, "layers.0.attention.wk.weight", false, map[string]string{"dim": "64", "n_layers": "5", "format": "pt"}},
		{"vision/ppocr_cls.safetensors", 213, "batch_norm_0.b_0", true, nil},
		{"vision/ppocr_det.safetensors", 135, "batch_norm2d_0.b_0", true, nil},
	}
	for _, tt := range tests {
		t.Run(filepath.Base(tt.rel), func(t *testing.T) {
			path := shareddata.Path(t, tt.rel)
			in, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			src, err := OpenPath(path)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			rc := src.(*ReadCloser)
			ts := rc.Tensors()
			if len(ts) != tt.tensors {
				t.Errorf("%d tensors, want %d", len(ts), tt.tensors)
			}
			if ts[0].Name != tt.first {
				t.Errorf("first tensor %q, want %q", ts[0].Name, tt.first)
			}
			if rc.HasMetadata() != (tt.meta != nil) {
				t.Errorf("HasMetadata = %v", rc.HasMetadata())
			}
			for k, v := range tt.meta {
				if got := rc.Metadata()[k]; got != v {
					t.Errorf("metadata %q = %q, want %q", k, got, v)
				}
			}
			if out := rewriteRaw(t, &rc.File); !bytes.Equal(out, in) {
				t.Errorf("raw round trip differs from the %d-byte input", len(in))
			}
			if !tt.canonical {
				return
			}
			var buf bytes.Buffer
			w, err := NewWriter(&buf, &Header{Metadata: rc.Metadata(), Tensors: ts})
			if err != nil {
				t.Fatal(err)
			}
			for _, ti := range ts {
				data, err := rc.ReadTensor(ti.Name)
				if err != nil {
					t.Fatal(err)
				}
				if err := w.WriteTensor(ti.Name, data); err != nil {
					t.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), in) {
				t.Errorf("canonical header differs from the reference serializer's")
			}
		})
	}
}
