package safetensors

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenWrongFormat: a file of another recognisable type gets a
// WrongFormatError naming it, which still matches ErrFormat; unrecognised
// garbage keeps the parser's own error.
func TestOpenWrongFormat(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, data, kind string
	}{
		{"x.gguf", "GGUF\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", "GGUF"},
		{"x.png", "\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "PNG"},
		{"x.nwc", "\x89NWC\r\n\x1a\n\x01\x00\x00\x00\x00\x00\x00\x00", ".nwc"},
		{"x.txt", "Once upon a time there was", ""},
	}
	for _, tt := range tests {
		p := filepath.Join(dir, tt.name)
		if err := os.WriteFile(p, []byte(tt.data), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Open(p)
		var wf *WrongFormatError
		switch {
		case !errors.Is(err, ErrFormat) && !errors.Is(err, ErrTooLarge):
			t.Errorf("%s: %v, want a format error", tt.name, err)
		case tt.kind == "" && errors.Is(err, ErrWrongFormat):
			t.Errorf("%s: %v, want the parser's error", tt.name, err)
		case tt.kind != "" && (!errors.As(err, &wf) || !strings.Contains(wf.Kind, tt.kind) || !errors.Is(err, ErrFormat)):
			t.Errorf("%s: %v, want a WrongFormatError naming %s", tt.name, err, tt.kind)
		}
	}
}
