// Package codec defines how tensors are compressed inside a .nwc file: the
// registries of encoders and of decoders, keyed by the codec id stored in
// each tensor entry, and the built-in raw and lossless codecs. The lossy
// codecs register their decoders from their own packages (codec/scalar,
// codec/neural) and their encoders from separate ones (scalarenc,
// nwcenc), so that a program that only reads links no encoder.
//
// A codec turns a tensor into independently decodable chunk groups (ranges
// of elements in row-major order of the tensor's 2-D view), optional named
// auxiliary sections (per-column scales, importance levels) and an optional
// shared blob (decoder weights and entropy tables, stored once per file).
// The container never looks inside them; FORMAT.md specifies each codec's
// bytes.
package codec

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"sync"

	"github.com/nwcodec/nwc/format"
)

// A Tensor is the input of an encoder.
type Tensor struct {
	Name  string
	DType format.DType
	Shape []uint64
	Data  []byte // little-endian elements, len = numel × dtype size
}

// NumElements returns the product of the shape.
func (t *Tensor) NumElements() uint64 {
	n := uint64(1)
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// EncodeOptions configure the encoders. The zero value is valid: each codec
// documents its defaults.
type EncodeOptions struct {
	// GroupBytes is the target decoded size of one chunk group; 0 means
	// DefaultGroupBytes. Smaller groups allow finer partial reads and more
	// parallel decoding; larger ones compress slightly better.
	GroupBytes int

	// The fields below configure the lossy codecs (ecsq, rtn, q4k, nwc),
	// which work on the 2-D view W[rows=out, cols=in] of a tensor, with
	// every column normalized to unit RMS and cut into chunks of 16 rows.

	// Step is the quantizer step in units of the column RMS (the
	// normalized domain) for codecs with a continuous rate (ecsq, nwc);
	// 0 selects the codec's default. Rate control searches it.
	Step float64
	// Bits is the integer bit width of rtn (2..8); 0 selects 4.
	Bits int
	// Group is rtn's group size along the input dimension; 0 selects 128.
	Group int
	// Transposed says the tensor is stored [in, out] (PaddlePaddle's
	// linear layout): the codec works on its transpose, so columns are
	// still input channels.
	Transposed bool
	// Hessian is the optional cols×cols row-major matrix E[x xᵀ] of the
	// layer's inputs. When set, codecs that support it code column blocks
	// with LDLQ error compensation.
	Hessian []float64
	// LDLQBlock is the number of columns per LDLQ block; 0 selects 128.
	LDLQBlock int
	// Levels optionally gives each view column an importance level 0..3
	// (3 = most important); nil means all 0.
	Levels []uint8
	// ScaleFactors optionally multiplies each view column's scale, and so
	// its quantizer step, by a positive factor (nil means all 1), for
	// codecs that normalize columns (ecsq, nwc). Unlike Levels it costs
	// nothing in the file, since decoders only see the scaled scales; the
	// guided conversion uses it to give the columns whose errors the
	// layer's output feels most the finest steps.
	ScaleFactors []float32
	// BlobRef asks codecs whose blob is built into the library (see
	// RegisterBuiltinBlob) to store only its SHA-256 (BlobData.Ref), which
	// saves the blob's bytes in files read by this library.
	BlobRef bool
	// NoBlob asks codecs to code without a shared blob: nwc then codes
	// every tensor on its scalar path. Conversion sets it when the blob
	// would cost the file more than it can save.
	NoBlob bool
	// Jobs bounds the goroutines one Encode call uses (0 means
	// GOMAXPROCS): callers that encode several tensors at once set it so
	// that the machine is not oversubscribed. The encoded bytes never
	// depend on it.
	Jobs int
	// ReleaseInput lets the encoder set the tensor's Data to nil once it
	// has loaded it, so that the caller's copy of the source bytes can be
	// collected while the tensor is coded: a large matrix then needs less
	// memory at its peak. The caller must not use t.Data afterwards.
	// Encoders that do not honour it leave Data alone.
	ReleaseInput bool
	// Estimate says that only the size of the encoding matters, not its
	// quality: rate control's first, coarse look at a matrix. A codec
	// that chooses between codings may then skip choosing and code the
	// cheapest way whose size is close to what its choice would take (nwc
	// rounds: it codes the trellis and the learned transform at the step
	// where they cost what rounding does, and its choice between them
	// is made on a sample five to seven times over).
	Estimate bool
	// Interrupt, if set, is called by lossy encoders between the column
	// blocks of a matrix; a non-nil result stops the encoding, which
	// returns it. Conversion sets it to its context's Err, so that an
	// interrupt stops within one block of a matrix that takes minutes to
	// code rather than after it. The encoded bytes never depend on it.
	Interrupt func() error
}

// Interruptible returns quant, checking o.Interrupt before each call when
// it is set: for encoders that code a matrix in column blocks.
func (o *EncodeOptions) Interruptible(quant func(c0, c1 int) error) func(c0, c1 int) error {
	if o == nil || o.Interrupt == nil {
		return quant
	}
	return func(c0, c1 int) error {
		if err := o.Interrupt(); err != nil {
			return err
		}
		return quant(c0, c1)
	}
}

// ErrOptions reports encode or conversion options that cannot be used:
// out of range, inconsistent with the tensor (levels, scale factors or a
// Hessian of the wrong size) or not supported by the codec. Every such
// error of the encoders and of conversion wraps it; packages wrap it in
// finer sentinels where callers may want to tell cases apart (such as
// chunk.ErrLevels).
var ErrOptions = errors.New("codec: invalid options")

// DefaultGroupBytes is the decoded size of a chunk group unless configured.
const DefaultGroupBytes = 1 << 20

// An EncodedGroup is one chunk group: the elements up to End (exclusive)
// that follow the previous group's.
type EncodedGroup struct {
	End  uint64
	Data []byte
}

// A BlobData is codec data shared between tensors; the writer stores each
// distinct blob once.
type BlobData struct {
	Codec string
	Data  []byte
	// Ref stores only the SHA-256 of Data, which must be registered with
	// RegisterBuiltinBlob; readers resolve it to their built-in copy.
	Ref bool
}

var builtinBlobs sync.Map // builtinKey → []byte

type builtinKey struct {
	codec string
	sum   [32]byte
}

// RegisterBuiltinBlob makes data, a blob of codec id built into the
// library, resolvable by its SHA-256, so that files may reference it
// instead of storing it. Registering the same blob twice is harmless.
func RegisterBuiltinBlob(id string, data []byte) {
	builtinBlobs.LoadOrStore(builtinKey{id, sha256.Sum256(data)}, data)
}

// BuiltinBlob returns the built-in blob of codec id with the given
// SHA-256 (the caller must not modify it).
func BuiltinBlob(id string, sum [32]byte) ([]byte, bool) {
	v, ok := builtinBlobs.Load(builtinKey{id, sum})
	if !ok {
		return nil, false
	}
	return v.([]byte), true
}

// NamedBytes is one auxiliary section.
type NamedBytes struct {
	Name string
	Data []byte
}

// Encoded is what an encoder produces for one tensor.
type Encoded struct {
	Params []byte    // one msgpack value, or nil
	View   [2]uint64 // rows, cols
	Groups []EncodedGroup
	Aux    []NamedBytes // names unique; the writer sorts them
	Blob   *BlobData    // nil if the codec needs none
}

// An Env gives a decoder lazy access to the rest of its tensor's data. The
// reader verifies each section's checksum before handing it out and caches
// parsed blobs.
type Env interface {
	// Aux returns the auxiliary section name, or an error wrapping
	// format.ErrFormat if the tensor has none.
	Aux(name string) ([]byte, error)
	// Blob returns the tensor's blob parsed by parse; the result of the
	// first call is shared by every tensor that references the same blob.
	// A codec that uses a blob asks for it in NewDecoder: the reader
	// rejects a tensor whose blob its codec did not ask for, and a blob
	// of another codec.
	Blob(parse func(data []byte) (any, error)) (any, error)
}

// A GroupDecoder decodes the groups of one tensor. It must be safe for
// concurrent use.
type GroupDecoder interface {
	// DecodeGroup decodes group i from payload into dst, which has room
	// for exactly the group's elements in the tensor's dtype.
	DecodeGroup(i int, payload []byte, dst []byte) error
}

// A GroupChecker is a GroupDecoder that can tell from a group's payload
// alone, cheaply and without allocating, that it cannot decode to n
// elements. Readers call CheckGroup before they allocate a group's decoded
// size, so that a payload of a few bytes cannot make them allocate the
// gigabytes a group may declare. A nil error promises nothing: DecodeGroup
// still checks everything.
type GroupChecker interface {
	CheckGroup(i int, payload []byte, n uint64) error
}

// An Encoder compresses tensors for the codec it is registered under. It
// must be safe for concurrent use. Encoders may also implement Stepper and
// BlobSizer.
type Encoder interface {
	// Encode compresses t.
	Encode(t *Tensor, opts *EncodeOptions) (*Encoded, error)
}

// A Decoder prepares the decoding of tensors of the codec it is
// registered under. It must be safe for concurrent use.
type Decoder interface {
	// NewDecoder checks the tensor entry's parameters (and whatever it
	// needs from env) and returns a decoder for its groups. Bad data yields
	// an error wrapping format.ErrFormat.
	NewDecoder(t *format.Tensor, env Env) (GroupDecoder, error)
}

// A Stepper is a lossy codec whose rate falls continuously as
// EncodeOptions.Step grows, so that rate control can search the step for a
// target number of bits per weight.
type Stepper interface {
	// DefaultStep is the step used when EncodeOptions.Step is 0.
	DefaultStep() float64
}

// A BlobSizer is a codec that stores a shared blob (decoder weights) in
// files that use it, so that conversion can weigh the blob's cost.
type BlobSizer interface {
	// BlobSize is the size in bytes of the blob a file would store.
	BlobSize() int
}

// Lossy reports whether codec id changes values.
func Lossy(id string) bool { return id != Raw && id != Lossless }

// Encoders and decoders are registered apart, so that a program that only
// reads files links no encoder (and none of the linear algebra and
// training code encoders pull in): the decoder packages register
// decoders, their encoder packages encoders.
var (
	encoders sync.Map // id string → Encoder
	decoders sync.Map // id string → Decoder
)

// RegisterEncoder makes an encoder available under id. It panics if id
// already has an encoder, as two codecs cannot share an id stored in files.
func RegisterEncoder(id string, e Encoder) {
	if _, dup := encoders.LoadOrStore(id, e); dup {
		panic("codec: RegisterEncoder called twice for codec " + id)
	}
}

// RegisterDecoder makes a decoder available under id. It panics if id
// already has a decoder.
func RegisterDecoder(id string, d Decoder) {
	if _, dup := decoders.LoadOrStore(id, d); dup {
		panic("codec: RegisterDecoder called twice for codec " + id)
	}
}

// LookupEncoder returns the encoder registered under id, or an error
// wrapping format.ErrUnsupported if the program links none (import the
// codec's encoder package for its side effect).
func LookupEncoder(id string) (Encoder, error) {
	e, ok := encoders.Load(id)
	if !ok {
		return nil, format.UnsupportedError(fmt.Sprintf("encoder of codec %q", id))
	}
	return e.(Encoder), nil
}

// LookupDecoder returns the decoder registered under id, or an error
// wrapping format.ErrUnsupported.
func LookupDecoder(id string) (Decoder, error) {
	d, ok := decoders.Load(id)
	if !ok {
		return nil, format.UnsupportedError(fmt.Sprintf("codec %q", id))
	}
	return d.(Decoder), nil
}

// EncoderIDs returns the ids of the registered encoders in no particular
// order.
func EncoderIDs() []string { return ids(&encoders) }

// DecoderIDs returns the ids of the registered decoders in no particular
// order.
func DecoderIDs() []string { return ids(&decoders) }

func ids(m *sync.Map) []string {
	var ids []string
	m.Range(func(k, _ any) bool {
		ids = append(ids, k.(string))
		return true
	})
	return ids
}

// DefaultView returns the 2-D view of a shape used by codecs that do not
// chunk columns: [shape[0], product of the rest] for rank ≥ 2, [1, n] for
// rank 1 and [1, 1] for a scalar.
func DefaultView(shape []uint64) [2]uint64 {
	switch len(shape) {
	case 0:
		return [2]uint64{1, 1}
	case 1:
		return [2]uint64{1, shape[0]}
	}
	rest := uint64(1)
	for _, d := range shape[1:] {
		rest *= d
	}
	return [2]uint64{shape[0], rest}
}

// SplitElements cuts n elements of elemSize bytes into group ends of about
// groupBytes each, at multiples of quantum elements (so that a codec's
// blocks never straddle two groups).
func SplitElements(n uint64, elemSize int, groupBytes int, quantum uint64) []uint64 {
	if groupBytes <= 0 {
		groupBytes = DefaultGroupBytes
	}
	if quantum == 0 {
		quantum = 1
	}
	per := uint64(groupBytes) / uint64(elemSize)
	per = max(per/quantum, 1) * quantum
	per = min(per, format.MaxGroupElements/quantum*quantum)
	var ends []uint64
	for e := uint64(0); e < n; {
		e = min(e+per, n)
		ends = append(ends, e)
	}
	return ends
}
