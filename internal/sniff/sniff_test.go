package sniff

import (
	"bytes"
	"encoding/binary"
	"path/filepath"
	"testing"

	"github.com/nwcodec/nwc/internal/shareddata"
)

// llama2cHeader builds a legacy llama2.c header and the file size run.c's
// layout gives it.
func llama2cHeader(dim, hidden, layers, heads, kv, vocab, seq int32) ([]byte, int64) {
	var b bytes.Buffer
	binary.Write(&b, binary.LittleEndian, []int32{dim, hidden, layers, heads, kv, vocab, seq})
	d, h, l, hs := int64(dim), int64(hidden), int64(layers), int64(dim/heads)
	v := int64(vocab)
	if v < 0 {
		v = -v
	}
	n := v*d + l*(2*d+2*d*d+2*d*int64(kv)*hs+3*d*h) + d + int64(seq)*hs
	if vocab < 0 {
		n += v * d
	}
	return b.Bytes(), 28 + 4*n
}

func TestDetect(t *testing.T) {
	st := append(binary.LittleEndian.AppendUint64(nil, 2), "{}"...)
	ll, llSize := llama2cHeader(64, 172, 5, 8, 4, 512, 512)
	llu, lluSize := llama2cHeader(64, 172, 5, 8, 4, -512, 512)
	tests := []struct {
		name string
		head []byte
		size int64 // 0: len(head)
		want Kind
	}{
		{"empty", nil, 0, Empty},
		{"safetensors", st, 0, Safetensors},
		{"safetensors header longer than the file", st, 9, Unknown},
		{"nwc", []byte("\x89NWC\r\n\x1a\n\x01\x00"), 0, NWC},
		{"gguf", []byte("GGUF\x03\x00\x00\x00"), 0, GGUF},
		{"ggjt", []byte("tjgg\x03\x00\x00\x00"), 0, GGML},
		{"llama2.c v2", []byte("24ka\x02\x00\x00\x00"), 0, Llama2cV2},
		{"llama2.c", ll, llSize, Llama2c},
		{"llama2.c, unshared classifier", llu, lluSize, Llama2c},
		{"llama2.c header, size one float short", ll, llSize - 4, Unknown},
		{"zip", []byte("PK\x03\x04\x14\x00"), 0, Zip},
		{"pickle", []byte("\x80\x02}q\x00"), 0, Pickle},
		{"numpy", []byte("\x93NUMPY\x01\x00"), 0, NumPy},
		{"png", []byte("\x89PNG\r\n\x1a\n\x00\x00"), 0, PNG},
		{"jpeg", []byte("\xff\xd8\xff\xe0"), 0, JPEG},
		{"gzip", []byte("\x1f\x8b\x08\x00"), 0, Gzip},
		{"zstd", []byte("\x28\xb5\x2f\xfd\x00"), 0, Zstd},
		{"json", []byte("  {\"weight_map\": {}}"), 0, JSON},
		{"text", []byte("Once upon a time"), 0, Unknown},
	}
	for _, tt := range tests {
		size := tt.size
		if size == 0 {
			size = int64(len(tt.head))
		}
		// Pad to size so that ReadAt sees a file of that length.
		data := make([]byte, max(size, int64(len(tt.head))))
		copy(data, tt.head)
		if got := Detect(bytes.NewReader(data[:size]), size); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}

// TestFileSharedData checks real files of each kind.
func TestFileSharedData(t *testing.T) {
	dir := filepath.Join(shareddata.Dir(t), "stories260K")
	for name, want := range map[string]Kind{
		"stories260K.bin":                  Llama2c,
		"stories260K.safetensors":          Safetensors,
		"tinyllamas-stories-260k-f32.gguf": GGUF,
		"tok512.bin":                       Unknown,
	} {
		if got, err := File(filepath.Join(dir, name)); err != nil || got != want {
			t.Errorf("%s: %q %v, want %q", name, got, err, want)
		}
	}
}
