// Package sniff recognises the file types people hand to nwc by mistake
// (GGUF, llama2.c checkpoints, PyTorch archives, images, .nwc files given
// to convert and safetensors given to decode), so that the tools can say
// what a file is instead of reporting a nonsensical header field.
package sniff

import (
	"bytes"
	"encoding/binary"
	"io"
	"os"

	"github.com/nwcodec/nwc/format"
)

// A Kind names a file type, as a noun phrase with its article ("a GGUF
// file"), ready for messages. The zero Kind means not recognised.
type Kind string

// Recognised kinds.
const (
	Unknown     Kind = ""
	Safetensors Kind = "a safetensors file"
	NWC         Kind = "a .nwc file"
	GGUF        Kind = "a GGUF file (llama.cpp)"
	GGML        Kind = "a GGML/GGJT file (old llama.cpp)"
	Llama2c     Kind = "a llama2.c checkpoint"
	Llama2cV2   Kind = "a versioned llama2.c checkpoint"
	Zip         Kind = "a zip archive (a PyTorch checkpoint saves as one)"
	Pickle      Kind = "a Python pickle (a PyTorch checkpoint?)"
	NumPy       Kind = "a NumPy array file"
	PNG         Kind = "a PNG image"
	JPEG        Kind = "a JPEG image"
	GIF         Kind = "a GIF image"
	Gzip        Kind = "a gzip archive"
	Zstd        Kind = "a zstd-compressed file"
	XZ          Kind = "an xz archive"
	JSON        Kind = "a JSON file"
	Empty       Kind = "an empty file"
)

// headLen is how much of a file Detect looks at.
const headLen = 32

// File detects the kind of the named file. Directories and unreadable
// paths are Unknown with the error from opening them.
func File(name string) (Kind, error) {
	f, err := os.Open(name)
	if err != nil {
		return Unknown, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return Unknown, err
	}
	return Detect(f, fi.Size()), nil
}

// Detect looks at the start of a file of the given size read from r.
func Detect(r io.ReaderAt, size int64) Kind {
	if size == 0 {
		return Empty
	}
	head := make([]byte, min(size, headLen))
	if n, err := r.ReadAt(head, 0); n < len(head) && err != nil {
		return Unknown
	}
	magics := []struct {
		prefix string
		kind   Kind
	}{
		{format.Magic, NWC},
		{"GGUF", GGUF},
		{"lmgg", GGML}, {"fmgg", GGML}, {"tjgg", GGML}, // little-endian "ggml", "ggmf", "ggjt"
		{"24ka", Llama2cV2}, // little-endian 0x616b3432
		{"PK\x03\x04", Zip},
		{"\x93NUMPY", NumPy},
		{"\x89PNG\r\n\x1a\n", PNG},
		{"\xff\xd8\xff", JPEG},
		{"GIF8", GIF},
		{"\x1f\x8b", Gzip},
		{"\x28\xb5\x2f\xfd", Zstd},
		{"\xfd7zXZ\x00", XZ},
	}
	for _, m := range magics {
		if bytes.HasPrefix(head, []byte(m.prefix)) {
			return m.kind
		}
	}
	if len(head) >= 9 {
		n := binary.LittleEndian.Uint64(head)
		if n >= 2 && n <= uint64(size-8) && head[8] == '{' {
			return Safetensors
		}
	}
	if len(head) >= 2 && head[0] == 0x80 && head[1] >= 2 && head[1] <= 5 {
		return Pickle
	}
	if isLlama2c(head, size) {
		return Llama2c
	}
	if t := bytes.TrimLeft(head, " \t\r\n\xef\xbb\xbf"); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		return JSON
	}
	return Unknown
}

// isLlama2c reports whether head is a legacy llama2.c header (seven int32s:
// dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len,
// negative vocab_size for an unshared classifier) whose weights, laid out
// as run.c reads them, add up to exactly the file size. Few other files
// pass that test by accident.
func isLlama2c(head []byte, size int64) bool {
	if len(head) < 28 {
		return false
	}
	var h [7]int64
	for i := range h {
		h[i] = int64(int32(binary.LittleEndian.Uint32(head[4*i:])))
	}
	dim, hidden, layers, heads, kv, vocab, seq := h[0], h[1], h[2], h[3], h[4], h[5], h[6]
	shared := vocab > 0
	if vocab < 0 {
		vocab = -vocab
	}
	const lim = 1 << 20 // keeps every product below 2^63
	for _, v := range []int64{dim, hidden, layers, heads, kv, vocab, seq} {
		if v <= 0 || v > lim {
			return false
		}
	}
	if dim%heads != 0 || kv > heads || layers > 1<<10 {
		return false
	}
	hs := dim / heads
	n := vocab*dim + layers*(2*dim+dim*dim+2*dim*kv*hs+dim*dim+3*dim*hidden) + dim + seq*hs
	if !shared {
		n += vocab * dim
	}
	return 28+4*n == size
}
