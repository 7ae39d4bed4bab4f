package reader_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/writer"
)

// copyEncoded writes every tensor of r into a new file through
// Tensor.Encoded and WriteEncoded, as nwc merge does.
func copyEncoded(t *testing.T, r *reader.Reader, plain bool) []byte {
	t.Helper()
	var wo writer.Options
	if a := r.Alignment(); a == 1 {
		wo.Packed = true
	} else {
		wo.AlignLog2 = uint8(bits.TrailingZeros(uint(a)))
	}
	wo.PlainIndex = plain
	var buf bytes.Buffer
	w, err := writer.New(&buf, &wo)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SetMetadata(r.Metadata()); err != nil {
		t.Fatal(err)
	}
	for i, s := range r.Index().Sources {
		h, err := r.SourceHeader(i)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.AddSource(s.Name, h); err != nil {
			t.Fatal(err)
		}
	}
	for _, tn := range r.Tensors() {
		enc, err := tn.Encoded(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := w.WriteEncoded(tn.Name(), tn.DType(), tn.Shape(), tn.Codec(), enc); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestEncodedCopiesExactly copies every golden file written by this
// writer tensor by tensor through Tensor.Encoded: the copy must be the
// same bytes (embedded and referenced blobs, inline and section aux,
// sources, alignment).
func TestEncodedCopiesExactly(t *testing.T) {
	paths, err := filepath.Glob("../conformance/testdata/golden/*.nwc")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			r, err := reader.NewReader(bytes.NewReader(b), int64(len(b)), nil)
			if err != nil {
				t.Fatal(err)
			}
			if major, minor := r.Version(); major != format.VersionMajor || minor != format.VersionMinor {
				t.Skipf("version %d.%d: this writer writes %d.%d", major, minor, format.VersionMajor, format.VersionMinor)
			}
			// The index is stored plain either on request or when zstd
			// does not shorten it; the copy must match one way.
			if c := copyEncoded(t, r, false); !bytes.Equal(c, b) && !bytes.Equal(copyEncoded(t, r, true), b) {
				t.Fatalf("copy of %d bytes differs from the %d-byte original", len(c), len(b))
			}
		})
	}
}

// writeSet writes a sharded set of n parts of two raw tensors each, from
// plan hash plan, into dir, with its index; part i's tensors are
// "t<i>a" and "t<i>b".
func writeSet(t *testing.T, dir string, n int, plan string) {
	t.Helper()
	x := &format.ShardIndex{WeightMap: map[string]string{}}
	x.Metadata.Plan, x.Metadata.Parts = plan, n
	for i := 1; i <= n; i++ {
		f, err := writer.Create(filepath.Join(dir, format.PartName(i, n)), &writer.Options{Packed: true})
		if err != nil {
			t.Fatal(err)
		}
		f.SetMetadata(map[string]string{"arch": "test", format.MetaPlan: plan, format.MetaPart: format.FormatPart(i, n)})
		for _, s := range []string{"a", "b"} {
			name := fmt.Sprintf("t%d%s", i, s)
			data := bytes.Repeat([]byte{byte(i), s[0], 0, 0}, 6)
			if err := f.WriteTensor(&codec.Tensor{Name: name, DType: format.F32, Shape: []uint64{2, 3}, Data: data}, codec.Lossless, nil); err != nil {
				t.Fatal(err)
			}
			x.WeightMap[name] = format.PartName(i, n)
			x.Metadata.TotalSize += 24
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	b, err := x.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, format.ShardIndexName), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

const planA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

// TestOpenSet opens a sharded set by its directory and by its index and
// reads it through the single-file API.
func TestOpenSet(t *testing.T) {
	dir := t.TempDir()
	writeSet(t, dir, 3, planA)
	for _, p := range []string{dir, filepath.Join(dir, format.ShardIndexName)} {
		r, err := reader.Open(p, &reader.Options{Mmap: true})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, tn := range r.Tensors() {
			names = append(names, tn.Name())
		}
		if got := strings.Join(names, " "); got != "t1a t1b t2a t2b t3a t3b" {
			t.Errorf("tensors %s", got)
		}
		tn, err := r.Tensor("t2b")
		if err != nil {
			t.Fatal(err)
		}
		if b, err := tn.Bytes(); err != nil || !bytes.Equal(b, bytes.Repeat([]byte{2, 'b', 0, 0}, 6)) {
			t.Errorf("t2b = %v, %v", b, err)
		}
		if _, err := r.Tensor("t4a"); !errors.Is(err, format.ErrNotFound) {
			t.Errorf("missing tensor: %v", err)
		}
		md := r.Metadata()
		if md["arch"] != "test" || md[format.MetaPlan] != planA || md[format.MetaPart] != "" {
			t.Errorf("metadata %v", md)
		}
		if x := r.Index(); len(x.Tensors) != 6 || x.Metadata[format.MetaPart] != "" {
			t.Errorf("index: %d tensors, metadata %v", len(x.Tensors), x.Metadata)
		}
		var size int64
		for _, part := range r.Parts() {
			fi, err := os.Stat(part)
			if err != nil {
				t.Fatal(err)
			}
			size += fi.Size()
		}
		if len(r.Parts()) != 3 || r.Size() != size {
			t.Errorf("parts %v, size %d, want 3 parts of %d bytes in all", r.Parts(), r.Size(), size)
		}
		if x := r.ShardIndex(); x == nil || x.Metadata.TotalSize != 6*24 {
			t.Errorf("shard index %+v", x)
		}
		if err := r.Verify(context.Background(), &reader.VerifyOptions{Deep: true}); err != nil {
			t.Error(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := tn.Bytes(); err == nil {
			t.Error("a tensor decoded after Close")
		}
	}
	// A single file through Open has no parts.
	r, err := reader.Open(filepath.Join(dir, format.PartName(1, 3)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Parts() != nil || r.ShardIndex() != nil || r.Metadata()[format.MetaPart] != "1/3" {
		t.Errorf("single file: parts %v, metadata %v", r.Parts(), r.Metadata())
	}
	r.Close()
}

// TestOpenDir opens directories: one holding a single .nwc opens it; one
// holding several and no index, or two indexes, is an error.
func TestOpenDir(t *testing.T) {
	dir := t.TempDir()
	writeSet(t, dir, 1, planA)
	os.Remove(filepath.Join(dir, format.ShardIndexName))
	r, err := reader.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Parts() != nil || len(r.Tensors()) != 2 {
		t.Errorf("directory with one file: parts %v, %d tensors", r.Parts(), len(r.Tensors()))
	}
	r.Close()
	writeSet(t, dir, 2, planA)
	os.Remove(filepath.Join(dir, format.ShardIndexName))
	if _, err := reader.Open(dir, nil); err == nil {
		t.Error("directory of three .nwc files and no index: no error")
	}
	writeSet(t, dir, 2, planA)
	os.WriteFile(filepath.Join(dir, "other"+format.ShardIndexSuffix), []byte("{}"), 0o644)
	if _, err := reader.Open(dir, nil); err == nil {
		t.Error("directory of two indexes: no error")
	}
	if _, err := reader.Open(filepath.Join(dir, "missing.nwc"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestOpenSetInvalid opens sets whose index or parts are wrong: each is an
// error wrapping format.ErrFormat (or ErrLimit), and nothing stays open.
func TestOpenSetInvalid(t *testing.T) {
	edit := func(old, new string) func(*testing.T, string) {
		return func(t *testing.T, dir string) {
			p := filepath.Join(dir, format.ShardIndexName)
			b, _ := os.ReadFile(p)
			if !bytes.Contains(b, []byte(old)) {
				t.Fatalf("index lacks %q", old)
			}
			os.WriteFile(p, bytes.Replace(b, []byte(old), []byte(new), 1), 0o644)
		}
	}
	tests := []struct {
		name   string
		break_ func(t *testing.T, dir string)
		want   error
	}{
		{"not JSON", edit(`{`, `[`), format.ErrFormat},
		{"trailing data", func(t *testing.T, dir string) {
			p := filepath.Join(dir, format.ShardIndexName)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, append(b, "{}"...), 0o644)
		}, format.ErrFormat},
		{"bad plan hash", edit(planA, "xyz"), format.ErrFormat},
		{"zero parts", edit(`"nwc_parts": 3`, `"nwc_parts": 0`), format.ErrFormat},
		{"part count differs from names", edit(`"nwc_parts": 3`, `"nwc_parts": 4`), format.ErrFormat},
		{"path in weight map", edit(`"t1a": "model`, `"t1a": "../model`), format.ErrFormat},
		{"empty part", func(t *testing.T, dir string) {
			edit(`"t2a": "model-00002-of-00003.nwc"`, `"t2a": "model-00001-of-00003.nwc"`)(t, dir)
			edit(`"t2b": "model-00002-of-00003.nwc"`, `"t2b": "model-00001-of-00003.nwc"`)(t, dir)
		}, format.ErrFormat},
		{"tensor not in the weight map", edit(`"t3a": "model-00003-of-00003.nwc",`, ``), format.ErrFormat},
		{"extra tensor in the weight map", edit(`"t1a"`, `"t0": "model-00001-of-00003.nwc", "t1a"`), format.ErrFormat},
		{"missing part", func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, format.PartName(3, 3))) }, format.ErrFormat},
		{"part of another plan", func(t *testing.T, dir string) {
			other := t.TempDir()
			writeSet(t, other, 3, strings.Repeat("b", 64))
			b, _ := os.ReadFile(filepath.Join(other, format.PartName(2, 3)))
			os.WriteFile(filepath.Join(dir, format.PartName(2, 3)), b, 0o644)
		}, format.ErrFormat},
		{"part of a set of 2", func(t *testing.T, dir string) {
			other := t.TempDir()
			writeSet(t, other, 2, planA)
			b, _ := os.ReadFile(filepath.Join(other, format.PartName(2, 2)))
			os.WriteFile(filepath.Join(dir, format.PartName(2, 3)), b, 0o644)
		}, format.ErrFormat},
		{"damaged part", func(t *testing.T, dir string) {
			p := filepath.Join(dir, format.PartName(2, 3))
			b, _ := os.ReadFile(p)
			b[len(b)-1] ^= 1
			os.WriteFile(p, b, 0o644)
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			writeSet(t, dir, 3, planA)
			tc.break_(t, dir)
			r, err := reader.Open(dir, nil)
			if err == nil {
				r.Close()
				t.Fatal("opened")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if format.Class(err) == "" {
				t.Fatalf("err = %v has no class", err)
			}
		})
	}
}
