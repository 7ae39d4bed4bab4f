package calib

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/nwcodec/nwc/llama"
	"github.com/nwcodec/nwc/safetensors"
)

// Names used in the Hessian file; see the package documentation.
const (
	tensorSuffix = ".hessian"
	keyTokens    = "tokens"
	keyTokensFor = "tokens." // + stored weight name
	keyAlias     = "alias."  // + weight name; value: stored weight name
	keyVersion   = "hessians_version"
	version      = "1"
)

// Tolerances of the file checks: float32 products computed elsewhere are
// neither exactly symmetric nor exactly within the Cauchy–Schwarz bound.
const (
	symTol = 1e-4
	csTol  = 1e-3
)

var (
	// ErrFormat reports a Hessian file or a Set that breaks the schema of
	// the package documentation.
	ErrFormat = errors.New("calib: invalid Hessian file")
	// ErrNotFound reports a weight without a Hessian.
	ErrNotFound = errors.New("calib: no Hessian for weight")
)

// A FormatError describes what is wrong with a Hessian file and, when it
// concerns one, which tensor or metadata key. It matches ErrFormat under
// errors.Is, and unwraps to the safetensors error when the container
// itself is malformed.
type FormatError struct {
	Name string // tensor or metadata key, if any
	Msg  string
	Err  error
}

// Error describes the problem.
func (e *FormatError) Error() string {
	s := "calib: invalid Hessian file: "
	if e.Name != "" {
		s += strconv.Quote(e.Name) + ": "
	}
	s += e.Msg
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is reports whether target is ErrFormat.
func (e *FormatError) Is(target error) bool { return target == ErrFormat }

// Unwrap returns the underlying error.
func (e *FormatError) Unwrap() error { return e.Err }

func formatErr(name, format string, args ...any) error {
	return &FormatError{Name: name, Msg: fmt.Sprintf(format, args...)}
}

// A Hessian is E[x xᵀ] for the N-wide input of a linear layer.
type Hessian struct {
	N      int
	Data   []float64 // N×N row-major, symmetric
	Tokens int64     // number of calibration tokens averaged
}

// Diag returns the diagonal of h, the mean square of each input, which
// ranks input columns by importance (see Levels).
func (h *Hessian) Diag() []float64 {
	d := make([]float64, h.N)
	for i := range d {
		d[i] = h.Data[i*h.N+i]
	}
	return d
}

// A Set maps weight names to the Hessians of their inputs. Weights that
// read the same input share one *Hessian, stored once under one of them.
type Set struct {
	// Tokens is the number of calibration tokens, written as the file's
	// "tokens" metadata. Write uses the largest Hessian count if it is 0.
	Tokens int64
	// F64 stores the Hessians as float64 instead of float32.
	F64 bool
	// Metadata holds extra string metadata to write, such as the model
	// and text calibrated on; reading fills it with the keys the schema
	// does not define.
	Metadata map[string]string

	stored map[string]*Hessian // by the weight it is stored under
	owner  map[string]string   // every weight → the weight it is stored under
}

// NewSet returns an empty Set.
func NewSet() *Set {
	return &Set{stored: make(map[string]*Hessian), owner: make(map[string]string)}
}

// Add stores h as the Hessian of weight. The error wraps ErrFormat if
// weight already has one or h is not N×N.
func (s *Set) Add(weight string, h *Hessian) error {
	if _, ok := s.owner[weight]; ok {
		return formatErr(weight, "weight has a Hessian already")
	}
	if h == nil || h.N < 1 || len(h.Data) != h.N*h.N {
		return formatErr(weight, "Hessian is not square")
	}
	s.stored[weight] = h
	s.owner[weight] = weight
	return nil
}

// Alias makes weight share the Hessian stored under stored. The error wraps
// ErrFormat if weight already has a Hessian and ErrNotFound if stored has
// none of its own.
func (s *Set) Alias(weight, stored string) error {
	if _, ok := s.owner[weight]; ok {
		return formatErr(weight, "weight has a Hessian already")
	}
	if _, ok := s.stored[stored]; !ok {
		return fmt.Errorf("%w: alias target %q is not stored", ErrNotFound, stored)
	}
	s.owner[weight] = stored
	return nil
}

// Hessian returns the Hessian of weight's input.
func (s *Set) Hessian(weight string) (*Hessian, bool) {
	h, ok := s.stored[s.owner[weight]]
	return h, ok
}

// Weights returns every weight with a Hessian, sorted.
func (s *Set) Weights() []string {
	return slices.Sorted(maps.Keys(s.owner))
}

// Stored returns the weights whose Hessians are stored (rather than
// aliased), sorted.
func (s *Set) Stored() []string {
	return slices.Sorted(maps.Keys(s.stored))
}

// StoredUnder returns the weight under which weight's Hessian is stored:
// weight itself or the weight it aliases.
func (s *Set) StoredUnder(weight string) (string, bool) {
	o, ok := s.owner[weight]
	return o, ok
}

// FromLlama builds a Set from the Hessians llama.Calibrate collected for m:
// every linear weight of m gets the mean Hessian of its input, stored under
// the name llama.Model.HessianKey gives (the query projection for query,
// key and value; the gate projection w1 for w1 and w3) and aliased from
// the others. Weights are named as in the checkpoint m was loaded from
// (llama.Model.CheckpointName), so the Set matches that checkpoint's
// tensors, Hugging Face names included; a Hessian is about a layer's
// inputs, which the row order of Hugging Face query and key matrices does
// not touch.
func FromLlama(m *llama.Model, hs *llama.Hessians) (*Set, error) {
	s := NewSet()
	names := m.Names()
	for pass := range 2 {
		// Stored weights first, so that aliases find their targets.
		for _, name := range names {
			key, ok := m.HessianKey(name)
			if !ok || (key == name) != (pass == 0) {
				continue
			}
			h, ok := hs.Get(key)
			if !ok || h.Count == 0 {
				return nil, fmt.Errorf("%w: %s (no calibration tokens reached %s)", ErrNotFound, name, key)
			}
			weight := m.CheckpointName(name)
			if pass == 1 {
				if err := s.Alias(weight, m.CheckpointName(key)); err != nil {
					return nil, err
				}
				continue
			}
			if err := s.Add(weight, &Hessian{N: h.N, Data: h.Mean(), Tokens: h.Count}); err != nil {
				return nil, err
			}
			s.Tokens = max(s.Tokens, h.Count)
		}
	}
	return s, nil
}

// WriteHessians writes s to path in the schema of the package
// documentation. The file appears under its name only when complete.
func WriteHessians(path string, s *Set) error {
	if len(s.stored) == 0 {
		return formatErr("", "no Hessians to write")
	}
	md := make(map[string]string, len(s.Metadata)+len(s.owner)+2)
	for k, v := range s.Metadata {
		if k == keyTokens || k == keyVersion || strings.HasPrefix(k, keyTokensFor) || strings.HasPrefix(k, keyAlias) {
			return formatErr(k, "metadata key is reserved by the schema")
		}
		md[k] = v
	}
	tokens := s.Tokens
	for _, h := range s.stored {
		tokens = max(tokens, h.Tokens)
	}
	if tokens < 1 {
		return formatErr(keyTokens, "token count %d is not positive", tokens)
	}
	md[keyTokens] = strconv.FormatInt(tokens, 10)
	md[keyVersion] = version
	dt := safetensors.F32
	if s.F64 {
		dt = safetensors.F64
	}
	h := &safetensors.Header{Metadata: md}
	for _, w := range s.Stored() {
		hs := s.stored[w]
		if hs.Tokens > 0 && hs.Tokens != tokens {
			md[keyTokensFor+w] = strconv.FormatInt(hs.Tokens, 10)
		}
		n := int64(hs.N)
		h.Tensors = append(h.Tensors, safetensors.TensorInfo{Name: w + tensorSuffix, DType: dt, Shape: []int64{n, n}})
	}
	for w, o := range s.owner {
		if o != w {
			md[keyAlias+w] = o
		}
	}
	return safetensors.WriteFile(path, h, func(name string) ([]byte, error) {
		hs := s.stored[strings.TrimSuffix(name, tensorSuffix)]
		if s.F64 {
			b := make([]byte, 8*len(hs.Data))
			for i, v := range hs.Data {
				binary.LittleEndian.PutUint64(b[8*i:], math.Float64bits(v))
			}
			return b, nil
		}
		b := make([]byte, 4*len(hs.Data))
		for i, v := range hs.Data {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(v)))
		}
		return b, nil
	})
}

// ReadHessians reads and validates the Hessian file at path.
func ReadHessians(path string) (*Set, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	return Read(f, fi.Size())
}

// Read reads and validates a Hessian file of the given size from r. Every
// tensor is checked as the package documentation describes; the error
// wraps ErrFormat for a file that breaks the schema (including a malformed
// safetensors container).
func Read(r io.ReaderAt, size int64) (*Set, error) {
	f, err := safetensors.NewReader(r, size, nil)
	if err != nil {
		if errors.Is(err, safetensors.ErrFormat) || errors.Is(err, safetensors.ErrUnsupported) || errors.Is(err, safetensors.ErrTooLarge) {
			return nil, &FormatError{Msg: "not a valid safetensors file", Err: err}
		}
		return nil, err
	}
	md := f.Metadata()
	s := NewSet()
	s.F64 = true
	tokens, err := parseTokens(md, keyTokens)
	if err != nil {
		return nil, err
	}
	s.Tokens = tokens
	if v, ok := md[keyVersion]; ok && v != version {
		return nil, formatErr(keyVersion, "unsupported version %q", v)
	}
	infos := f.Tensors()
	if len(infos) == 0 {
		return nil, formatErr("", "no Hessians")
	}
	for _, ti := range infos {
		w, ok := strings.CutSuffix(ti.Name, tensorSuffix)
		if !ok || w == "" {
			return nil, formatErr(ti.Name, "tensor name does not end in %q", tensorSuffix)
		}
		if ti.DType != safetensors.F32 && ti.DType != safetensors.F64 {
			return nil, formatErr(ti.Name, "dtype %s, want F32 or F64", ti.DType)
		}
		s.F64 = s.F64 && ti.DType == safetensors.F64
		if len(ti.Shape) != 2 || ti.Shape[0] != ti.Shape[1] || ti.Shape[0] < 1 {
			return nil, formatErr(ti.Name, "shape %v is not [n, n]", ti.Shape)
		}
		raw, err := f.ReadTensor(ti.Name)
		if err != nil {
			return nil, err
		}
		n := int(ti.Shape[0])
		h := &Hessian{N: n, Data: decode(raw, ti.DType), Tokens: tokens}
		if err := validate(ti.Name, h); err != nil {
			return nil, err
		}
		if _, ok := md[keyTokensFor+w]; ok {
			if h.Tokens, err = parseTokens(md, keyTokensFor+w); err != nil {
				return nil, err
			}
		}
		if err := s.Add(w, h); err != nil {
			return nil, err
		}
	}
	s.Metadata = make(map[string]string)
	for _, k := range slices.Sorted(maps.Keys(md)) {
		v := md[k]
		switch {
		case k == keyTokens || k == keyVersion:
		case strings.HasPrefix(k, keyTokensFor):
			if _, ok := s.stored[k[len(keyTokensFor):]]; !ok {
				return nil, formatErr(k, "token count for a weight that is not stored")
			}
		case strings.HasPrefix(k, keyAlias):
			w := k[len(keyAlias):]
			if _, ok := s.stored[w]; ok {
				return nil, formatErr(k, "aliased weight is also stored")
			}
			if err := s.Alias(w, v); err != nil {
				return nil, &FormatError{Name: k, Msg: "bad alias", Err: err}
			}
		default:
			s.Metadata[k] = v
		}
	}
	return s, nil
}

func parseTokens(md map[string]string, key string) (int64, error) {
	v, ok := md[key]
	if !ok {
		return 0, formatErr(key, "missing token count")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 1 {
		return 0, formatErr(key, "token count %q is not a positive integer", v)
	}
	return n, nil
}

// decode converts little-endian F32 or F64 bytes, whose length the
// safetensors reader has checked against the shape, to float64.
func decode(raw []byte, dt safetensors.DType) []float64 {
	if dt == safetensors.F64 {
		out := make([]float64, len(raw)/8)
		for i := range out {
			out[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
		}
		return out
	}
	out := make([]float64, len(raw)/4)
	for i := range out {
		out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
	}
	return out
}

// validate applies the schema's checks to one Hessian.
func validate(name string, h *Hessian) error {
	n, d := h.N, h.Data
	var trace float64
	for i, v := range d {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return formatErr(name, "entry (%d, %d) is %v", i/n, i%n, v)
		}
	}
	for i := range n {
		v := d[i*n+i]
		if v < 0 {
			return formatErr(name, "diagonal entry %d is negative (%v)", i, v)
		}
		trace += v
	}
	if !(trace > 0) || math.IsInf(trace, 0) {
		return formatErr(name, "trace %v is not positive and finite", trace)
	}
	// Entries far below the scale of the matrix are float noise.
	floor := 1e-12 * trace / float64(n)
	for i := range n {
		hii := d[i*n+i]
		for j := i + 1; j < n; j++ {
			hjj := d[j*n+j]
			a, b := d[i*n+j], d[j*n+i]
			bound := math.Sqrt(hii * hjj)
			if math.Abs(a-b) > symTol*bound+floor {
				return formatErr(name, "not symmetric: (%d, %d) = %v, (%d, %d) = %v", i, j, a, j, i, b)
			}
			if a*a > hii*hjj*(1+csTol)+floor*floor {
				return formatErr(name, "entry (%d, %d) = %v exceeds sqrt(H_ii·H_jj) = %v: not a second moment", i, j, a, bound)
			}
		}
	}
	return nil
}
