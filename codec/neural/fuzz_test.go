package neural_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/neural"
	"github.com/nwcodec/nwc/codec/neural/nwcenc"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/writer"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldenTensors are the tensors of testdata/golden.nwc: a learned and a
// plain tensor, with levels and a ragged last chunk.
func goldenTensors() []struct {
	t    *codec.Tensor
	opts codec.EncodeOptions
} {
	levels := make([]uint8, 24)
	for j := range levels {
		levels[j] = uint8(j % 4)
	}
	return []struct {
		t    *codec.Tensor
		opts codec.EncodeOptions
	}{
		{gaussTensor("learned", 40, 24, 11), codec.EncodeOptions{Step: 0.6, Levels: levels}},
		{gaussTensor("plain", 21, 8, 12), codec.EncodeOptions{Step: 0.2}},
	}
}

// TestGolden pins the bytes of a small file and the SHA-256 of what it
// decodes to, so that any change to the encoder, the default model or the
// decode arithmetic shows up (regenerate with -update).
func TestGolden(t *testing.T) {
	var buf bytes.Buffer
	w, err := writer.New(&buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	def, err := nwcenc.Default()
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range goldenTensors() {
		// The learned tensor is forced to keep the transform, so that
		// the file exercises the decoder network.
		c := def
		if g.t.Name == "learned" {
			c = def.Learned()
		}
		enc, err := c.Encode(g.t, &g.opts)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteEncoded(g.t.Name, g.t.DType, g.t.Shape, neural.ID, enc); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := reader.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()), nil)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	for _, tt := range r.Tensors() {
		// The file must exercise both decoding paths.
		if learned := tt.Entry().Blob >= 0; learned != (tt.Name() == "learned") {
			t.Errorf("tensor %q: learned transform %v", tt.Name(), learned)
		}
		b, err := tt.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		h.Write(b)
	}
	sum := hex.EncodeToString(h.Sum(nil)) + "\n"
	file, sumFile := filepath.Join("testdata", "golden.nwc"), filepath.Join("testdata", "golden.sha256")
	if *update {
		if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(sumFile, []byte(sum), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Error("the encoder's output differs from testdata/golden.nwc (run with -update after an intended change)")
	}
	wantSum, err := os.ReadFile(sumFile)
	if err != nil {
		t.Fatal(err)
	}
	if sum != string(wantSum) {
		t.Errorf("decoded SHA-256 %s, want %s", strings.TrimSpace(sum), strings.TrimSpace(string(wantSum)))
	}
}

// FuzzDecode feeds arbitrary parameters, auxiliary sections and payloads
// to the decoder of a small tensor with the default blob. Seeds come from
// testdata/golden.nwc. It must never panic, and must either fail with
// format.ErrFormat or produce exactly the tensor's bytes, from a payload
// that CheckGroup accepts.
func FuzzDecode(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "golden.nwc"))
	if err != nil {
		f.Fatal(err)
	}
	r, err := reader.NewReader(bytes.NewReader(b), int64(len(b)), nil)
	if err != nil {
		f.Fatal(err)
	}
	for _, tt := range r.Tensors() {
		e := tt.Entry()
		sec := func(name string) []byte {
			a, ok := e.AuxEntry(name)
			if !ok {
				return nil
			}
			if a.Inline != nil {
				return a.Inline
			}
			return b[a.Offset:a.Section.End()]
		}
		g := e.Groups[0]
		f.Add(e.Params, sec("scales"), sec("levels"), sec(neural.AuxTables), b[g.Section.Offset:g.Section.End()], uint8(e.View[0]), uint8(e.View[1]))
	}
	def, err := neural.Default()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, params, scales, levels, tables, payload []byte, rows, cols uint8) {
		if rows == 0 || cols == 0 {
			return
		}
		enc := &codec.Encoded{Params: params, View: [2]uint64{uint64(rows), uint64(cols)},
			Groups: []codec.EncodedGroup{{End: uint64(rows) * uint64(cols), Data: payload}},
			Blob:   &codec.BlobData{Codec: neural.ID, Data: def.Blob()}}
		for _, a := range []codec.NamedBytes{{Name: "levels", Data: levels}, {Name: "scales", Data: scales}, {Name: neural.AuxTables, Data: tables}} {
			if a.Data != nil {
				enc.Aux = append(enc.Aux, a)
			}
		}
		tt := &codec.Tensor{Name: "f", DType: format.F32, Shape: []uint64{uint64(rows), uint64(cols)}}
		out, err := decodeAll(tt, enc)
		if err != nil {
			if !isFormat(err) {
				t.Fatalf("error %v does not wrap format.ErrFormat", err)
			}
			return
		}
		if len(out) != 4*int(rows)*int(cols) {
			t.Fatalf("decoded %d bytes for %d×%d", len(out), rows, cols)
		}
		// A reader asks first whether the payload can hold the group: a
		// payload that decodes must never be refused.
		c, err := codec.LookupDecoder(neural.ID)
		if err != nil {
			t.Fatal(err)
		}
		dec, err := c.NewDecoder(entry(tt, enc), memEnv{enc})
		if err != nil {
			t.Fatal(err)
		}
		if ch, ok := dec.(codec.GroupChecker); !ok {
			t.Fatal("the nwc decoder does not check payloads")
		} else if err := ch.CheckGroup(0, payload, uint64(rows)*uint64(cols)); err != nil {
			t.Fatalf("CheckGroup refuses a payload that decodes: %v", err)
		}
	})
}

// FuzzCodecFile feeds arbitrary bytes to ParseCodec, which reads the .nwcc
// files `nwc train` writes and a user hands back to the tools. Seeds are
// the built-in default.nwcc and its truncations. It must never panic and
// must either fail with format.ErrFormat (format.ErrLimit for an over-long
// key or string) or accept a codec that marshals
// to a file that parses to the same marshalled bytes.
func FuzzCodecFile(f *testing.F) {
	b, err := os.ReadFile("default.nwcc")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add(b[:64])
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := neural.ParseCodec(b)
		if err != nil {
			if !isFormatOrLimit(err) {
				t.Fatalf("error %v wraps neither format.ErrFormat nor format.ErrLimit", err)
			}
			return
		}
		m1, err := c.MarshalBinary()
		if err != nil {
			t.Fatalf("accepted codec does not marshal: %v", err)
		}
		c2, err := neural.ParseCodec(m1)
		if err != nil {
			t.Fatalf("marshalled codec does not parse: %v", err)
		}
		m2, err := c2.MarshalBinary()
		if err != nil || !bytes.Equal(m1, m2) {
			t.Fatalf("marshalling is not stable: %v", err)
		}
	})
}

// FuzzBlob decodes the learned tensor of testdata/golden.nwc with an
// arbitrary codec blob, as a .nwc file embeds it: the decoder network and
// its configuration come from the file, so hostile layer sizes and
// configurations must fail with format.ErrFormat (or format.ErrLimit)
// before they drive an
// allocation. Seeds are the blobs of testdata/golden.nwc and the default
// codec's.
func FuzzBlob(f *testing.F) {
	b, err := os.ReadFile(filepath.Join("testdata", "golden.nwc"))
	if err != nil {
		f.Fatal(err)
	}
	r, err := reader.NewReader(bytes.NewReader(b), int64(len(b)), nil)
	if err != nil {
		f.Fatal(err)
	}
	var tensor *codec.Tensor
	var enc *codec.Encoded
	for _, tt := range r.Tensors() {
		e := tt.Entry()
		if e.Blob < 0 {
			continue
		}
		if s := r.Index().Blobs[e.Blob].Section; s != nil {
			f.Add(b[s.Offset:s.End()])
		}
		if enc != nil {
			continue
		}
		tensor = &codec.Tensor{Name: e.Name, DType: e.DType, Shape: e.Shape}
		enc = &codec.Encoded{Params: e.Params, View: e.View}
		for _, a := range e.Aux {
			data := a.Inline
			if data == nil {
				data = b[a.Offset:a.Section.End()]
			}
			enc.Aux = append(enc.Aux, codec.NamedBytes{Name: a.Name, Data: data})
		}
		for _, g := range e.Groups {
			enc.Groups = append(enc.Groups, codec.EncodedGroup{End: g.End, Data: b[g.Section.Offset:g.Section.End()]})
		}
	}
	if enc == nil {
		f.Fatal("testdata/golden.nwc has no tensor with a blob")
	}
	def, err := neural.Default()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(def.Blob())
	// The seeds must reach the network: the file's own blob decodes.
	good := *enc
	good.Blob = &codec.BlobData{Codec: neural.ID, Data: def.Blob()}
	if _, err := decodeAll(tensor, &good); err != nil {
		f.Fatalf("the golden tensor does not decode with the default blob: %v", err)
	}
	f.Fuzz(func(t *testing.T, blob []byte) {
		e := *enc
		e.Blob = &codec.BlobData{Codec: neural.ID, Data: blob}
		out, err := decodeAll(tensor, &e)
		if err != nil {
			if !isFormatOrLimit(err) {
				t.Fatalf("error %v wraps neither format.ErrFormat nor format.ErrLimit", err)
			}
			return
		}
		if uint64(len(out)) != tensor.NumElements()*uint64(tensor.DType.Size()) {
			t.Fatalf("decoded %d bytes for %v", len(out), tensor.Shape)
		}
	})
}

// isFormatOrLimit reports whether err is a file's fault as FORMAT.md
// classifies it: malformed, or over one of §5.4's fixed limits.
func isFormatOrLimit(err error) bool {
	return errors.Is(err, format.ErrFormat) || errors.Is(err, format.ErrLimit)
}
