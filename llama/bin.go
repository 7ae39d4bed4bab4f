package llama

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
)

// ErrFormat reports a malformed llama2.c checkpoint.
var ErrFormat = errors.New("llama: invalid checkpoint format")

// A FormatError describes malformed checkpoint data and the byte offset at
// which it was found. It matches ErrFormat under errors.Is.
type FormatError struct {
	Offset int64  // byte offset of the offending field
	Msg    string // what was wrong
	Err    error  // underlying cause, if any
}

// Error describes the problem and where it was found.
func (e *FormatError) Error() string {
	s := "llama: " + e.Msg + " at offset " + strconv.FormatInt(e.Offset, 10)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is reports whether target is ErrFormat.
func (e *FormatError) Is(target error) bool { return target == ErrFormat }

// Unwrap returns the underlying cause.
func (e *FormatError) Unwrap() error { return e.Err }

const (
	binHeaderSize = 7 * 4
	// binMagic starts the versioned checkpoints of llama2.c's export.py
	// ("ak42"), which this package does not read.
	binMagic = 0x616b3432
	// readChunk is the number of floats read per step, so that a header
	// claiming huge tensors costs memory only as data actually arrives.
	readChunk = 1 << 16
)

// ReadBin reads a checkpoint in llama2.c's legacy format (version 0): seven
// little-endian int32s (dim, hidden_dim, n_layers, n_heads, n_kv_heads,
// vocab_size, seq_len), where a negative vocab_size marks a separate
// classifier, then the float32 weights in run.c's order with every layer's
// tensors of one kind stored together, including two unused rotary tables
// of seq_len×head_dim/2 floats before the classifier. The model uses run.c's
// constants for the RMSNorm epsilon and rotary base.
func ReadBin(r io.Reader) (*Model, error) {
	br := &countReader{r: bufio.NewReaderSize(r, 1<<16)}
	var hdr [7]int32
	if err := binary.Read(br, binary.LittleEndian, &hdr); err != nil {
		return nil, &FormatError{Offset: br.n, Msg: "short header", Err: err}
	}
	if uint32(hdr[0]) == binMagic {
		return nil, &FormatError{Offset: 0, Msg: "versioned llama2.c checkpoint (magic \"ak42\") is not supported, only the legacy format"}
	}
	cfg := Config{
		Dim: int(hdr[0]), HiddenDim: int(hdr[1]), NLayers: int(hdr[2]),
		NHeads: int(hdr[3]), NKVHeads: int(hdr[4]), VocabSize: int(hdr[5]),
		SeqLen: int(hdr[6]), NormEps: DefaultNormEps, RopeTheta: DefaultRopeTheta,
		TiedEmbeddings: true,
	}
	if cfg.VocabSize < 0 {
		cfg.VocabSize = -cfg.VocabSize
		cfg.TiedEmbeddings = false
	}
	if err := cfg.Validate(); err != nil {
		return nil, &FormatError{Offset: 0, Msg: "bad header", Err: err}
	}
	// Tensors are read before the model's tables are built, so a header
	// claiming many layers costs memory only as their data arrives.
	weights := make(map[string][]float32)
	err := walkBin(cfg, func(name string, shape []int64) error {
		data, err := readFloats(br, numel(shape))
		if err != nil {
			return &FormatError{Offset: br.n, Msg: "truncated tensor " + name, Err: err}
		}
		weights[name] = data
		return nil
	}, func(n int) error {
		off := br.n
		if _, err := io.CopyN(io.Discard, br, int64(n)*4); err != nil {
			return &FormatError{Offset: off, Msg: "truncated rotary tables", Err: noEOF(err)}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var one [1]byte
	if _, err := io.ReadFull(br, one[:]); err == nil {
		return nil, &FormatError{Offset: br.n - 1, Msg: "trailing data after weights"}
	}
	m := newModel(cfg)
	m.weights = weights
	m.bind()
	return m, nil
}

// LoadBin reads the llama2.c legacy checkpoint at path.
func LoadBin(path string) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := ReadBin(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// WriteBin writes m in llama2.c's legacy checkpoint format, which records
// neither the RMSNorm epsilon nor the rotary base: ReadBin assumes run.c's
// constants. The rotary tables are filled with m's cosines and sines, as
// llama2.c's exporter did.
func WriteBin(w io.Writer, m *Model) error {
	cfg := m.cfg
	vocab := int32(cfg.VocabSize)
	if !cfg.TiedEmbeddings {
		vocab = -vocab
	}
	hdr := [7]int32{int32(cfg.Dim), int32(cfg.HiddenDim), int32(cfg.NLayers),
		int32(cfg.NHeads), int32(cfg.NKVHeads), vocab, int32(cfg.SeqLen)}
	bw := bufio.NewWriterSize(w, 1<<16)
	if err := binary.Write(bw, binary.LittleEndian, hdr); err != nil {
		return err
	}
	err := walkBin(cfg, func(name string, _ []int64) error {
		return writeFloats(bw, m.weights[name])
	}, func(int) error {
		return writeRope(bw, cfg)
	})
	if err != nil {
		return err
	}
	return bw.Flush()
}

// walkBin calls tensor for each tensor of a cfg model, with its name and
// shape, and skip with the number of floats for the rotary tables, in run.c's
// memory_map_weights order: each kind of per-layer tensor for all layers in
// turn. It stops at the first error.
func walkBin(cfg Config, tensor func(name string, shape []int64) error, skip func(n int) error) error {
	d, v := int64(cfg.Dim), int64(cfg.VocabSize)
	if err := tensor(NameEmbedding, []int64{v, d}); err != nil {
		return err
	}
	for _, s := range layerSuffixes {
		shape := layerShape(cfg, s)
		for l := range cfg.NLayers {
			if err := tensor(LayerName(l, s), shape); err != nil {
				return err
			}
		}
	}
	if err := tensor(NameNorm, []int64{d}); err != nil {
		return err
	}
	if err := skip(cfg.SeqLen * cfg.HeadDim()); err != nil {
		return err
	}
	if !cfg.TiedEmbeddings {
		return tensor(NameOutput, []int64{v, d})
	}
	return nil
}

// readFloats reads n little-endian float32s, growing the result only as
// data arrives.
func readFloats(r io.Reader, n int) ([]float32, error) {
	out := make([]float32, 0, min(n, readChunk))
	buf := make([]byte, 4*min(n, readChunk))
	for len(out) < n {
		k := min(n-len(out), readChunk)
		if _, err := io.ReadFull(r, buf[:4*k]); err != nil {
			return nil, noEOF(err)
		}
		for i := range k {
			out = append(out, math.Float32frombits(binary.LittleEndian.Uint32(buf[4*i:])))
		}
	}
	return out, nil
}

func writeFloats(w io.Writer, data []float32) error {
	buf := make([]byte, 4*min(len(data), readChunk))
	for len(data) > 0 {
		k := min(len(data), readChunk)
		for i, v := range data[:k] {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		if _, err := w.Write(buf[:4*k]); err != nil {
			return err
		}
		data = data[k:]
	}
	return nil
}

// writeRope writes the cosine table then the sine table of every
// position, [SeqLen][HeadDim/2] each.
func writeRope(w io.Writer, cfg Config) error {
	half := cfg.HeadDim() / 2
	cos, sin := make([]float32, half), make([]float32, half)
	for _, table := range []int{0, 1} {
		for p := range cfg.SeqLen {
			ropeFill(cos, sin, p, cfg)
			row := cos
			if table == 1 {
				row = sin
			}
			if err := writeFloats(w, row); err != nil {
				return err
			}
		}
	}
	return nil
}

func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// countReader counts the bytes read, for error offsets.
type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
