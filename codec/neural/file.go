package neural

import (
	"crypto/sha256"
	_ "embed"
	"encoding/binary"
	"fmt"
	"math"
	"sync"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/chunk"
	"github.com/nwcodec/nwc/codec/mlp"
	"github.com/nwcodec/nwc/format"
)

// Versions of the two serialized forms (see FORMAT.md §7.7).
const (
	fileVersion = 1 // a .nwcc codec file: encoder, decoder, prior, provenance
	blobVersion = 1 // a codec blob in a .nwc file: the decoder only
)

// fileMagic is the "format" value of a .nwcc file, telling it apart from
// any other msgpack map.
const fileMagic = "nwcc"

// maxInfo bounds the provenance string of a codec file.
const maxInfo = 1 << 16

// A Codec is a trained neural codec ready to code tensors: the encoder and
// decoder networks in float32 and the decoder's blob. It is immutable and
// safe for concurrent use.
type Codec struct {
	Config   Config
	Info     string // provenance: how the codec was trained
	enc, dec *mlp.Net
	encP     *mlp.Packed
	dec1     *decoderModel
	prior    [2][NumLevels][]float32
	blob     []byte
}

// NewCodec freezes a trained model into a codec: its encoder and decoder
// networks, the prior's two parameters per level and latent channel, and
// info, its provenance (the training command).
func NewCodec(c Config, enc, dec *mlp.Net, priorA, priorB [NumLevels][]float32, info string) (*Codec, error) {
	x := &Codec{Config: c, Info: info, enc: enc, dec: dec, prior: [2][NumLevels][]float32{priorA, priorB}}
	return x, x.init()
}

// Nets returns the codec's encoder and decoder networks (the caller must
// not modify them).
func (c *Codec) Nets() (enc, dec *mlp.Net) { return c.enc, c.dec }

// PackedEncoder returns the encoder network in the form the fast kernels
// run.
func (c *Codec) PackedEncoder() *mlp.Packed { return c.encP }

// Reconstruct turns the latents of n chunks (n×Chunk, chunk-major, levels
// lv) into normalized weights exactly as the decoder does, for encoders
// that measure or feed back their error; seq and first are as the
// decoder's trellis walk (nil without p.Trellis), in and dout scratch of
// n×(Chunk+1) and n×Chunk values.
func (c *Codec) Reconstruct(out []float32, y []int32, lv []uint8, n int, p *Params, seq *ChunkSeq, first int, in, dout []float32, sc *mlp.Scratch) error {
	return reconstruct(c.dec1, out, y, lv, n, p, seq, first, in, dout, sc)
}

// init validates the networks against the configuration and derives the
// packed forms and the blob.
func (c *Codec) init() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if err := c.enc.Validate(); err != nil {
		return err
	}
	if c.enc.In() != c.Config.Chunk+1 || c.enc.Out() != c.Config.Latent {
		return fmt.Errorf("%w: encoder maps %d → %d values, want %d → %d", ErrConfig, c.enc.In(), c.enc.Out(), c.Config.Chunk+1, c.Config.Latent)
	}
	if c.enc.Embed != nil && c.enc.Levels() != NumLevels {
		return fmt.Errorf("%w: encoder has %d levels, want %d", ErrConfig, c.enc.Levels(), NumLevels)
	}
	for _, p := range c.prior {
		for q := range p {
			if len(p[q]) != c.Config.Latent {
				return fmt.Errorf("%w: prior has %d channels, want %d", ErrConfig, len(p[q]), c.Config.Latent)
			}
		}
	}
	w := format.NewMsgWriter()
	w.MapLen(3)
	w.String("version")
	w.Uint(blobVersion)
	w.String("config")
	writeConfig(w, c.Config)
	w.String("decoder")
	db, err := c.dec.MarshalBinary()
	if err != nil {
		return err
	}
	w.Bin(db)
	c.blob = w.Bytes()
	if c.dec1, err = parseBlob(c.blob); err != nil {
		return err
	}
	c.encP = mlp.Pack(c.enc)
	return nil
}

// Blob returns the codec blob a file stores for tensors coded with c (the
// caller must not modify it).
func (c *Codec) Blob() []byte { return c.blob }

// BlobSHA256 returns the SHA-256 of [Codec.Blob], which identifies the
// decoder in a file.
func (c *Codec) BlobSHA256() [32]byte { return sha256.Sum256(c.blob) }

func writeConfig(w *format.MsgWriter, c Config) {
	w.MapLen(4)
	w.String("chunk")
	w.Uint(uint64(c.Chunk))
	w.String("latent")
	w.Uint(uint64(c.Latent))
	w.String("width")
	w.Uint(uint64(c.Width))
	w.String("blocks")
	w.Uint(uint64(c.Blocks))
}

func readConfig(m *format.MsgReader) (Config, error) {
	var c Config
	seen := 0
	err := m.MapKeys("config", func(k string) error {
		v, err := m.Uint(k)
		if err != nil {
			return err
		}
		if v > maxWidth {
			return m.Errorf("config %s = %d is too large", k, v)
		}
		switch k {
		case "chunk":
			c.Chunk = int(v)
		case "latent":
			c.Latent = int(v)
		case "width":
			c.Width = int(v)
		case "blocks":
			c.Blocks = int(v)
		default:
			return m.Errorf("unknown config key %q", k)
		}
		seen++
		return nil
	})
	if err != nil {
		return c, err
	}
	if seen != 4 {
		return c, m.Errorf("config has %d of its 4 keys", seen)
	}
	if err := c.Validate(); err != nil {
		return c, m.Errorf("%v", err)
	}
	return c, nil
}

// MarshalBinary returns the .nwcc codec file of c: what `nwc train`
// writes and what the library embeds as its default.
func (c *Codec) MarshalBinary() ([]byte, error) {
	eb, err := c.enc.MarshalBinary()
	if err != nil {
		return nil, err
	}
	db, err := c.dec.MarshalBinary()
	if err != nil {
		return nil, err
	}
	w := format.NewMsgWriter()
	w.MapLen(8)
	w.String("format")
	w.String(fileMagic)
	w.String("version")
	w.Uint(fileVersion)
	w.String("config")
	writeConfig(w, c.Config)
	w.String("encoder")
	w.Bin(eb)
	w.String("decoder")
	w.Bin(db)
	w.String("prior_a")
	w.Bin(appendPrior(nil, c.prior[0]))
	w.String("prior_b")
	w.Bin(appendPrior(nil, c.prior[1]))
	w.String("info")
	w.String(c.Info)
	return w.Bytes(), nil
}

func appendPrior(b []byte, p [NumLevels][]float32) []byte {
	for q := range p {
		for _, v := range p[q] {
			b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
		}
	}
	return b
}

// ParseCodec reads a .nwcc codec file. Errors wrap format.ErrFormat, or
// format.ErrLimit for a key or string longer than FORMAT.md §5.4 allows.
func ParseCodec(b []byte) (*Codec, error) {
	m := format.NewMsgReader(b, -1)
	c := &Codec{}
	var magic string
	var version uint64
	var priors [2][]byte
	seen := map[string]bool{}
	err := m.MapKeys("codec file", func(k string) error {
		if seen[k] {
			return m.Errorf("duplicate key %q", k)
		}
		seen[k] = true
		var err error
		switch k {
		case "format":
			magic, err = m.String(k, 16)
		case "version":
			version, err = m.Uint(k)
		case "config":
			c.Config, err = readConfig(m)
		case "encoder", "decoder":
			var raw []byte
			if raw, err = m.Bytes(k); err != nil {
				return err
			}
			n := new(mlp.Net)
			if err = n.UnmarshalBinary(raw); err != nil {
				return m.Errorf("%s: %v", k, err)
			}
			if k == "encoder" {
				c.enc = n
			} else {
				c.dec = n
			}
		case "prior_a":
			priors[0], err = m.Bytes(k)
		case "prior_b":
			priors[1], err = m.Bytes(k)
		case "info":
			c.Info, err = m.String(k, maxInfo)
		default:
			err = m.Errorf("unknown key %q", k)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if m.Remaining() != 0 {
		return nil, m.Errorf("trailing bytes after the codec file")
	}
	if magic != fileMagic || version != fileVersion || len(seen) != 8 {
		return nil, format.Errorf(-1, "not a version %d nwc codec file (format %q, version %d, %d of 8 keys)", fileVersion, magic, version, len(seen))
	}
	for i, raw := range priors {
		if len(raw) != 4*NumLevels*c.Config.Latent {
			return nil, format.Errorf(-1, "prior holds %d bytes, want %d", len(raw), 4*NumLevels*c.Config.Latent)
		}
		for q := range NumLevels {
			c.prior[i][q] = make([]float32, c.Config.Latent)
			for j := range c.prior[i][q] {
				c.prior[i][q][j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*(q*c.Config.Latent+j):]))
			}
		}
	}
	if err := c.init(); err != nil {
		return nil, format.Errorf(-1, "codec file: %v", err)
	}
	return c, nil
}

// A decoderModel is a parsed codec blob, shared by every tensor that
// references it.
type decoderModel struct {
	config Config
	net    *mlp.Net
	packed *mlp.Packed
}

// parseBlob reads a codec blob. It accepts only what this decoder can run:
// residual models whose chunk is the format's 16 rows and whose decoder
// maps [y, feature] to a chunk with one embedding vector per level (or
// none). Errors wrap format.ErrFormat, or format.ErrLimit for a key or
// string longer than FORMAT.md §5.4 allows.
func parseBlob(b []byte) (*decoderModel, error) {
	m := format.NewMsgReader(b, -1)
	d := &decoderModel{}
	var version uint64
	seen := map[string]bool{}
	err := m.MapKeys("nwc blob", func(k string) error {
		if seen[k] {
			return m.Errorf("duplicate key %q", k)
		}
		seen[k] = true
		var err error
		switch k {
		case "version":
			version, err = m.Uint(k)
		case "config":
			d.config, err = readConfig(m)
		case "decoder":
			var raw []byte
			if raw, err = m.Bytes(k); err != nil {
				return err
			}
			d.net = new(mlp.Net)
			if err = d.net.UnmarshalBinary(raw); err != nil {
				return m.Errorf("decoder: %v", err)
			}
		default:
			err = m.Errorf("unknown key %q", k)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if m.Remaining() != 0 {
		return nil, m.Errorf("trailing bytes after the blob")
	}
	if version != blobVersion || len(seen) != 3 {
		return nil, format.Errorf(-1, "nwc blob: version %d with %d of 3 keys, want version %d", version, len(seen), blobVersion)
	}
	c := d.config
	if c.Chunk != chunk.Rows || c.Latent != c.Chunk {
		return nil, format.Errorf(-1, "nwc blob: chunk %d and latent %d, want both %d", c.Chunk, c.Latent, chunk.Rows)
	}
	if d.net.In() != c.Latent+1 || d.net.Out() != c.Chunk {
		return nil, format.Errorf(-1, "nwc blob: decoder maps %d → %d values, want %d → %d", d.net.In(), d.net.Out(), c.Latent+1, c.Chunk)
	}
	if d.net.Embed != nil && d.net.Levels() != NumLevels {
		return nil, format.Errorf(-1, "nwc blob: decoder has %d levels, want %d", d.net.Levels(), NumLevels)
	}
	d.packed = mlp.Pack(d.net)
	return d, nil
}

// defaultFile is the built-in codec, exactly as `nwc train` wrote it (the
// command is in its Info and in docs/TRAINING-nwc.md).
//
//go:embed default.nwcc
var defaultFile []byte

var defaultCodec = sync.OnceValues(func() (*Codec, error) { return ParseCodec(defaultFile) })

// init registers the default decoder blob so that files may reference it
// by SHA-256 alone (codec.EncodeOptions.BlobRef).
func init() {
	if c, err := Default(); err == nil {
		codec.RegisterBuiltinBlob(ID, c.Blob())
	}
}

// Default returns the built-in codec, the one the registered "nwc"
// encoder (package nwcenc) encodes with.
func Default() (*Codec, error) { return defaultCodec() }
