package reader_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/conformance"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/writer"
)

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r     io.ReaderAt
	bytes atomic.Int64
	calls atomic.Int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	c.calls.Add(1)
	n, err := c.r.ReadAt(p, off)
	c.bytes.Add(int64(n))
	return n, err
}

// TestOpenReadsOnlyIndex opens a file of 10 000 tensors and checks that
// exactly the preamble, the trailer and the index were read.
func TestOpenReadsOnlyIndex(t *testing.T) {
	var buf bytes.Buffer
	w, err := writer.New(&buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10000; i++ {
		tt := &codec.Tensor{Name: fmt.Sprintf("layer.%d.weight", i), DType: format.F32, Shape: []uint64{4}, Data: make([]byte, 16)}
		if err := w.WriteTensor(tt, codec.Raw, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	indexLen := int64(len(b)) - int64(format.TrailerLen) - int64(indexOffset(b))
	cr := &countingReaderAt{r: bytes.NewReader(b)}
	r, err := reader.NewReader(cr, int64(len(b)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Tensors()) != 10000 {
		t.Fatalf("%d tensors", len(r.Tensors()))
	}
	want := format.PreambleLen + format.TrailerLen + indexLen
	if got := cr.bytes.Load(); got != want {
		t.Fatalf("open read %d bytes, want %d (preamble + trailer + index of %d)", got, want, indexLen)
	}
	if got := cr.calls.Load(); got != 3 {
		t.Fatalf("open made %d reads, want 3", got)
	}
	// Reading one tensor reads its one group.
	before := cr.bytes.Load()
	tt, err := r.Tensor("layer.5000.weight")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tt.Bytes(); err != nil {
		t.Fatal(err)
	}
	if got := cr.bytes.Load() - before; got != 16 {
		t.Fatalf("decoding one 16-byte tensor read %d bytes", got)
	}
}

func indexOffset(b []byte) uint64 {
	return binary.LittleEndian.Uint64(b[len(b)-format.TrailerLen:])
}

func multiGroupFile(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := writer.New(&buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	opts := &codec.EncodeOptions{GroupBytes: 1000}
	for i, id := range []string{codec.Raw, codec.Lossless} {
		shape := []uint64{37, 29}
		tt := &codec.Tensor{Name: id, DType: format.BF16, Shape: shape, Data: conformance.Data(format.BF16, shape, uint64(i))}
		if err := w.WriteTensor(tt, id, opts); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestRowRanges decodes every row range of tensors split into many groups
// and compares with the full decode.
func TestRowRanges(t *testing.T) {
	b := multiGroupFile(t)
	r, err := reader.NewReader(bytes.NewReader(b), int64(len(b)), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range r.Tensors() {
		if len(tt.Entry().Groups) < 2 {
			t.Fatalf("%s: %d groups, want several", tt.Name(), len(tt.Entry().Groups))
		}
		full, err := tt.Bytes()
		if err != nil {
			t.Fatal(err)
		}
		rowBytes := tt.Cols() * 2
		for r0 := uint64(0); r0 <= tt.Rows(); r0 += 3 {
			for r1 := r0; r1 <= tt.Rows(); r1 += 5 {
				got, err := tt.RowBytes(r0, r1)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, full[r0*rowBytes:r1*rowBytes]) {
					t.Fatalf("%s rows [%d,%d) differ", tt.Name(), r0, r1)
				}
			}
		}
		if _, err := tt.RowBytes(2, tt.Rows()+1); err == nil {
			t.Fatal("out-of-range rows accepted")
		}
		f, err := tt.RowFloat32(1, 2)
		if err != nil || uint64(len(f)) != tt.Cols() {
			t.Fatalf("RowFloat32: %d values, %v", len(f), err)
		}
	}
}

// TestConcurrent decodes the same tensors from many goroutines (run with
// -race).
func TestConcurrent(t *testing.T) {
	b := multiGroupFile(t)
	r, err := reader.NewReader(bytes.NewReader(b), int64(len(b)), &reader.Options{Concurrency: 3})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for _, tt := range r.Tensors() {
		want[tt.Name()], _ = tt.Bytes()
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, tt := range r.Tensors() {
				got, err := tt.Bytes()
				if err != nil || !bytes.Equal(got, want[tt.Name()]) {
					t.Errorf("%s: concurrent decode differs (%v)", tt.Name(), err)
				}
			}
		}()
	}
	wg.Wait()
}

func TestErrors(t *testing.T) {
	if _, err := reader.NewReader(bytes.NewReader(nil), -1, nil); err == nil {
		t.Error("negative size accepted")
	}
	b := multiGroupFile(t)
	r, err := reader.NewReader(bytes.NewReader(b), int64(len(b)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Tensor("missing"); !errors.Is(err, format.ErrNotFound) {
		t.Errorf("missing tensor: %v", err)
	}
	if _, err := reader.NewReader(bytes.NewReader(b), int64(len(b)), &reader.Options{Limits: format.Limits{MaxIndexSize: 10}}); !errors.Is(err, format.ErrLimit) {
		t.Errorf("index over the limit: %v", err)
	}
	if _, err := reader.NewReader(bytes.NewReader(b), int64(len(b)), &reader.Options{Limits: format.Limits{MaxTensors: 1}}); !errors.Is(err, format.ErrLimit) {
		t.Errorf("tensor count over the limit: %v", err)
	}
	if _, err := reader.Open(filepath.Join(t.TempDir(), "nope.nwc"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// FuzzReader opens arbitrary bytes, verifies them and decodes every tensor
// under tight limits: nothing may panic, and a file that opens must not
// return a value together with an error.
func FuzzReader(f *testing.F) {
	for _, dir := range []string{"../conformance/testdata/golden", "../conformance/testdata/invalid"} {
		entries, err := os.ReadDir(dir)
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range entries {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				f.Fatal(err)
			}
			if len(b) < 1<<16 {
				f.Add(b)
			}
		}
	}
	lim := format.Limits{MaxIndexSize: 1 << 20, MaxTensors: 1 << 10, MaxTensorBytes: 1 << 22}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := reader.NewReader(bytes.NewReader(b), int64(len(b)), &reader.Options{Limits: lim})
		if err != nil {
			if r != nil {
				t.Fatal("reader and error")
			}
			if format.Class(err) == "" {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		_ = r.Verify(context.Background(), nil)
		for _, tt := range r.Tensors() {
			out, err := tt.Bytes()
			if err == nil && uint64(len(out)) != tt.NumElements()*uint64(tt.DType().Size()) {
				t.Fatalf("%s: decoded %d bytes", tt.Name(), len(out))
			}
			// The stream decodes the same groups: same success, same
			// bytes once converted.
			rc, serr := tt.Open(context.Background(), format.BF16)
			if !dtype.CanConvert(format.BF16, tt.DType()) {
				// A type with no real value (C64) opens as itself only.
				if !errors.Is(serr, format.ErrUnsupported) {
					t.Fatalf("%s: Open as BF16: %v, want ErrUnsupported", tt.Name(), serr)
				}
				continue
			}
			var got []byte
			if serr == nil {
				got, serr = io.ReadAll(rc)
				rc.Close()
			}
			if (serr == nil) != (err == nil) {
				t.Fatalf("%s: Bytes error %v, stream error %v", tt.Name(), err, serr)
			}
			if err == nil {
				want, _ := dtype.Convert(nil, format.BF16, out, tt.DType())
				if !bytes.Equal(got, want) {
					t.Fatalf("%s: stream differs from Bytes", tt.Name())
				}
			}
		}
	})
}

// TestBlobSHA256Mismatch reads a file whose embedded blob parses and
// matches its CRC but not the SHA-256 its entry records: decoding a tensor
// that uses it and Verify both report a checksum error (FORMAT.md §5.1).
func TestBlobSHA256Mismatch(t *testing.T) {
	b, err := os.ReadFile("../conformance/testdata/invalid/blob_sha256_mismatch.nwc")
	if err != nil {
		t.Fatal(err)
	}
	open := func() *reader.Reader {
		r, err := reader.NewReader(bytes.NewReader(b), int64(len(b)), nil)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	r := open()
	if len(r.Index().Blobs) != 1 || r.Index().Blobs[0].Section == nil {
		t.Fatal("the file has no embedded blob")
	}
	for _, tn := range r.Tensors() {
		if _, err := tn.Bytes(); !errors.Is(err, format.ErrChecksum) {
			t.Errorf("decoding %s: %v, want a checksum error", tn.Name(), err)
		}
	}
	if err := open().Verify(context.Background(), nil); !errors.Is(err, format.ErrChecksum) {
		t.Errorf("Verify: %v, want a checksum error", err)
	}
}
