package conformance_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/neural"
	"github.com/nwcodec/nwc/codec/neural/nwcenc"
	"github.com/nwcodec/nwc/conformance"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/spec"
	"github.com/nwcodec/nwc/writer"
)

// The reference decoder (package spec, written from FORMAT.md alone) and
// the fast path (package reader) must agree on every file: the same
// tensors bit for bit, or the same class of error.

// builtinBlobs is what spec.Decode needs to resolve the blob references
// the library resolves itself: the default nwc decoder blob.
func builtinBlobs(t testing.TB) map[[32]byte][]byte {
	t.Helper()
	c, err := neural.Default()
	if err != nil {
		t.Fatal(err)
	}
	return map[[32]byte][]byte{c.BlobSHA256(): c.Blob()}
}

// decoded is one decoder's view of a file: its tensors in order, or the
// class of its error.
type decoded struct {
	Metadata map[string]string
	Sources  [][]byte // the verbatim headers
	Tensors  []decodedTensor
	Class    string
}

type decodedTensor struct {
	Name, DType string
	Shape       []uint64
	Data        []byte
}

// fastDecode opens and verifies a file with package reader and decodes
// every tensor, as `nwc verify --deep` does.
func fastDecode(b []byte) (decoded, error) {
	r, err := reader.NewReader(bytes.NewReader(b), int64(len(b)), nil)
	if err != nil {
		return decoded{Class: format.Class(err)}, err
	}
	errs := []error{r.Verify(context.Background(), nil)}
	d := decoded{Metadata: r.Metadata()}
	for i := range r.Index().Sources {
		h, err := r.SourceHeader(i)
		errs = append(errs, err)
		d.Sources = append(d.Sources, h)
	}
	for _, t := range r.Tensors() {
		data, err := t.Bytes()
		errs = append(errs, err)
		d.Tensors = append(d.Tensors, decodedTensor{t.Name(), string(t.DType()), append([]uint64{}, t.Shape()...), data})
	}
	if err := errors.Join(errs...); err != nil {
		return decoded{Class: format.Class(err)}, err
	}
	return d, nil
}

func specDecode(b []byte, builtin map[[32]byte][]byte) (decoded, error) {
	f, err := spec.Decode(b, builtin)
	if err != nil {
		return decoded{Class: spec.Class(err)}, err
	}
	d := decoded{Metadata: f.Metadata}
	for _, s := range f.Sources {
		d.Sources = append(d.Sources, s.Header)
	}
	for _, t := range f.Tensors {
		d.Tensors = append(d.Tensors, decodedTensor{t.Name, t.DType, append([]uint64{}, t.Shape...), t.Data})
	}
	return d, nil
}

// compareDecoders decodes b both ways and reports any difference.
func compareDecoders(t *testing.T, b []byte, builtin map[[32]byte][]byte) (decoded, error) {
	t.Helper()
	fast, ferr := fastDecode(b)
	ref, serr := specDecode(b, builtin)
	if fast.Class == "" && ferr != nil || ref.Class == "unclassified" {
		t.Fatalf("unclassified error: fast path %v, spec %v", ferr, serr)
	}
	if diff := cmp.Diff(fast, ref); diff != "" {
		t.Fatalf("fast path and spec disagree (-fast +spec):\n%s\nfast path error: %v\nspec error: %v", diff, ferr, serr)
	}
	return ref, serr
}

// TestSpecGoldens decodes every golden file with both decoders: they must
// agree bit for bit and match the hashes of expected.json.
func TestSpecGoldens(t *testing.T) {
	exp := readExpected(t)
	builtin := builtinBlobs(t)
	for name, want := range exp.Golden {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata/golden", name))
			if err != nil {
				t.Fatal(err)
			}
			d, err := compareDecoders(t, b, builtin)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, tn := range d.Tensors {
				sum := sha256.Sum256(tn.Data)
				got[tn.Name] = hex.EncodeToString(sum[:])
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("spec's tensor hashes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestSpecInvalid checks that the spec decoder rejects every invalid file
// with its listed class, as the fast path does.
func TestSpecInvalid(t *testing.T) {
	exp := readExpected(t)
	builtin := builtinBlobs(t)
	names := make([]string, 0, len(exp.Invalid))
	for n := range exp.Invalid {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata/invalid", name))
			if err != nil {
				t.Fatal(err)
			}
			d, err := compareDecoders(t, b, builtin)
			if err == nil {
				t.Fatalf("accepted; want a %s error", exp.Invalid[name].Class)
			}
			if d.Class != exp.Invalid[name].Class {
				t.Fatalf("class %q, want %q: %v", d.Class, exp.Invalid[name].Class, err)
			}
		})
	}
}

// TestSpecRoundTrip writes small synthetic tensors with every codec and
// every float dtype through package writer and decodes them both ways.
func TestSpecRoundTrip(t *testing.T) {
	builtin := builtinBlobs(t)
	levels := []uint8{0, 3, 0, 1, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, 3, 0, 0, 0, 0}
	floats := []format.DType{format.F32, format.F16, format.BF16, format.F64, format.F8E4M3, format.F8E5M2}
	type tc struct {
		codec string
		opts  codec.EncodeOptions
	}
	cases := []tc{
		{codec: codec.Raw}, {codec: codec.Lossless},
		{codec: "ecsq"}, {codec: "ecsq", opts: codec.EncodeOptions{Levels: levels, Step: 0.1}},
		{codec: "ecsq", opts: codec.EncodeOptions{Transposed: true}},
		{codec: "tcq"}, {codec: "tcq", opts: codec.EncodeOptions{Levels: levels, Transposed: true}},
		{codec: "rtn", opts: codec.EncodeOptions{Bits: 3, Group: 7}}, {codec: "rtn", opts: codec.EncodeOptions{Bits: 8, Transposed: true}},
		{codec: "q4k"}, {codec: "q4k", opts: codec.EncodeOptions{Transposed: true}},
		{codec: "nwc"}, {codec: "nwc", opts: codec.EncodeOptions{Levels: levels, BlobRef: true}},
	}
	def, err := nwcenc.Default()
	if err != nil {
		t.Fatal(err)
	}
	for ci, c := range cases {
		for di, dt := range floats {
			for _, ref := range []bool{false, true} {
				if ref && c.codec != "nwc" {
					continue
				}
				name := fmt.Sprintf("%s/%d/%s/ref=%v", c.codec, ci, dt, ref)
				t.Run(name, func(t *testing.T) {
					var buf bytes.Buffer
					w, err := writer.New(&buf, &writer.Options{Packed: ci%2 == 0})
					if err != nil {
						t.Fatal(err)
					}
					shapes := [][]uint64{{37, 20}, {20}, {0, 20}, {16, 20}}
					if c.opts.Transposed {
						shapes = [][]uint64{{20, 37}, {20, 16}}
					}
					for si, shape := range shapes {
						data := []byte{}
						if shape[0] != 0 {
							data = conformance.Weights(dt, shape, uint64(100*ci+10*di+si))
						}
						tn := &codec.Tensor{Name: fmt.Sprintf("t%d", si), DType: dt, Shape: shape, Data: data}
						opts := c.opts
						opts.GroupBytes = 256
						opts.BlobRef = ref
						if len(shape) != 2 || shape[1] != 20 && !opts.Transposed {
							opts.Levels = nil
						}
						if opts.Transposed && shape[0] != 20 {
							opts.Levels = nil
						}
						if c.codec == "nwc" && si == 0 {
							// The learned path, so that the decoder MLP runs.
							enc, err := def.Learned().Encode(tn, &opts)
							if err == nil {
								err = w.WriteEncoded(tn.Name, dt, shape, "nwc", enc)
							}
							if err != nil {
								t.Fatal(err)
							}
							continue
						}
						if err := w.WriteTensor(tn, c.codec, &opts); err != nil {
							t.Fatal(err)
						}
					}
					if err := w.Close(); err != nil {
						t.Fatal(err)
					}
					if _, err := compareDecoders(t, buf.Bytes(), builtin); err != nil {
						t.Fatal(err)
					}
				})
			}
		}
	}
}
