package reader_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nwcodec/nwc/codec"
	_ "github.com/nwcodec/nwc/codec/neural/nwcenc"
	_ "github.com/nwcodec/nwc/codec/scalar/scalarenc"
	"github.com/nwcodec/nwc/dtype"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/writer"
)

// The load test's length, half reading the file with pread and half
// mapped: short by default so that go test stays quick;
//
//	go test ./reader -race -run TestStress -stress 30s -v
//
// is the long run.
var stressFor = flag.Duration("stress", 2*time.Second, "how long TestStress decodes")

// stressFile writes a file with every codec, several dtypes and small
// chunk groups, so that row ranges cross group boundaries.
func stressFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stress.nwc")
	f, err := writer.Create(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Abort()
	for i, s := range []struct {
		codec string
		dt    format.DType
		shape []uint64
	}{
		{codec.Raw, format.BF16, []uint64{37, 29}},
		{codec.Lossless, format.F32, []uint64{64, 48}},
		{codec.Lossless, format.BF16, []uint64{100}},
		{codec.Lossless, format.F16, []uint64{3, 5, 40}},
		{"ecsq", format.F32, []uint64{128, 64}},
		{"tcq", format.F16, []uint64{64, 64}},
		{"rtn", format.BF16, []uint64{64, 128}},
		{"q4k", format.BF16, []uint64{32, 256}},
		{"nwc", format.F32, []uint64{64, 64}},
		{"nwc", format.BF16, []uint64{32, 64}},
	} {
		n := uint64(1)
		for _, d := range s.shape {
			n *= d
		}
		rng := rand.New(rand.NewPCG(uint64(i), 1))
		vals := make([]float32, n)
		for k := range vals {
			vals[k] = float32(rng.NormFloat64() * 0.02)
		}
		data, err := dtype.FromFloat32(nil, vals, s.dt)
		if err != nil {
			t.Fatal(err)
		}
		tt := &codec.Tensor{Name: fmt.Sprintf("t%d.%s", i, s.codec), DType: s.dt, Shape: s.shape, Data: data}
		if err := f.WriteTensor(tt, s.codec, &codec.EncodeOptions{GroupBytes: 2048}); err != nil {
			t.Fatalf("%s: %v", tt.Name, err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// serial is one tensor decoded serially in each form the test asks for.
type serial struct {
	t    *reader.Tensor
	orig []byte
	f32  []float32
	bf16 []byte
	f16  []byte
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd to count descriptors:", err)
	}
	return len(ents)
}

// settledGoroutines waits up to a second for goroutines that are ending
// to end, and returns their count.
func settledGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for deadline := time.Now().Add(time.Second); n > want && time.Now().Before(deadline); n = runtime.NumGoroutine() {
		time.Sleep(10 * time.Millisecond)
	}
	return n
}

// TestStress decodes random tensors and row ranges of one shared Reader
// from 64 goroutines, through every public decoding path (DecodeRowsInto
// and RowsFloat32Into in every dtype, Float32Into, BF16Into, F16Into,
// streams from Tensor.Open read whole or closed early, Verify), compares
// every result with a serial decode, and checks that no file descriptor
// or goroutine outlives the Reader. Run it under -race.
func TestStress(t *testing.T) {
	path := stressFile(t)
	for _, mmap := range []bool{false, true} {
		t.Run(map[bool]string{false: "pread", true: "mmap"}[mmap], func(t *testing.T) {
			stress(t, path, &reader.Options{Mmap: mmap}, *stressFor/2)
		})
	}
}

// stress is TestStress on one way of opening the file, for d.
func stress(t *testing.T, path string, opts *reader.Options, d time.Duration) {
	fds0, gor0 := openFDs(t), runtime.NumGoroutine()

	rc, err := reader.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	mapped := rc.Mapped()
	if opts.Mmap && !mapped && runtime.GOOS == "linux" {
		t.Fatal("Options.Mmap did not map the file")
	}
	ctx := context.Background()
	var ref []serial
	for _, tt := range rc.Tensors() {
		if tt.NumElements() > 1000 && tt.NumGroups() < 2 {
			t.Fatalf("%s: one chunk group; row ranges would not cross groups", tt.Name())
		}
		s := serial{t: tt, f32: make([]float32, tt.NumElements()), bf16: make([]byte, 2*tt.NumElements()), f16: make([]byte, 2*tt.NumElements())}
		if s.orig, err = tt.Bytes(); err != nil {
			t.Fatal(err)
		}
		if err := tt.Float32Into(ctx, s.f32); err != nil {
			t.Fatal(err)
		}
		if err := tt.BF16Into(ctx, s.bf16); err != nil {
			t.Fatal(err)
		}
		if err := tt.F16Into(ctx, s.f16); err != nil {
			t.Fatal(err)
		}
		ref = append(ref, s)
	}

	const workers = 64
	var ops, decoded atomic.Int64
	var opCount [8]atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 0x5752))
			for n := 0; time.Now().Before(deadline); n++ {
				s := ref[rng.IntN(len(ref))]
				op := rng.IntN(len(opCount))
				if op == 7 && rng.IntN(8) != 0 {
					op = rng.IntN(7) // Verify reads the whole file: rarer
				}
				b, err := stressOp(ctx, rc.Reader, s, op, rng)
				if err != nil {
					t.Errorf("goroutine %d, op %d on %s: %v", g, op, s.t.Name(), err)
					return
				}
				ops.Add(1)
				opCount[op].Add(1)
				decoded.Add(int64(b))
			}
		}()
	}
	wg.Wait()
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	fds1, gor1 := openFDs(t), settledGoroutines(gor0)
	t.Logf("mapped %v; %d goroutines for %v: %d decodes (rows/bytes %d, rows/f32 %d, Float32Into %d, BF16Into %d, F16Into %d, stream %d, stream closed early %d, Verify %d), %.1f MB decoded; open fds %d before, %d after; goroutines %d before, %d after",
		mapped, workers, d, ops.Load(), opCount[0].Load(), opCount[1].Load(), opCount[2].Load(), opCount[3].Load(), opCount[4].Load(), opCount[5].Load(), opCount[6].Load(), opCount[7].Load(),
		float64(decoded.Load())/1e6, fds0, fds1, gor0, gor1)
	if fds1 != fds0 {
		t.Errorf("open file descriptors: %d before, %d after closing the reader", fds0, fds1)
	}
	// Fewer goroutines after is no leak: one that another test left
	// running (the previous subtest's reader winding down) may end
	// meanwhile.
	if gor1 > gor0 {
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines: %d before, %d after\n%s", gor0, gor1, buf[:runtime.Stack(buf, true)])
	}
	if ops.Load() < workers {
		t.Errorf("only %d decodes", ops.Load())
	}
}

// stressOp runs one random decode of s and compares it with the serial
// result, returning the bytes decoded.
func stressOp(ctx context.Context, rd *reader.Reader, s serial, op int, rng *rand.Rand) (int, error) {
	t := s.t
	rows, cols := t.Rows(), t.Cols()
	r0 := rng.Uint64N(rows + 1)
	r1 := r0 + rng.Uint64N(rows-r0+1)
	e0, e1 := r0*cols, r1*cols
	dts := []format.DType{t.DType(), format.F32, format.BF16, format.F16}
	full := map[format.DType][]byte{t.DType(): s.orig, format.BF16: s.bf16, format.F16: s.f16}
	switch op {
	case 0: // DecodeRowsInto, any dtype
		dt := dts[rng.IntN(len(dts))]
		want := full[dt]
		if dt == format.F32 && t.DType() != format.F32 {
			want = f32Bytes(s.f32)
		}
		sz := uint64(dt.Size())
		dst := make([]byte, (e1-e0)*sz)
		if err := t.DecodeRowsInto(ctx, r0, r1, dst, dt); err != nil {
			return 0, err
		}
		if !bytes.Equal(dst, want[e0*sz:e1*sz]) {
			return 0, fmt.Errorf("DecodeRowsInto rows [%d,%d) as %s differ from the serial decode", r0, r1, dt)
		}
		return len(dst), nil
	case 1: // RowsFloat32Into
		dst := make([]float32, e1-e0)
		if err := t.RowsFloat32Into(ctx, r0, r1, dst); err != nil {
			return 0, err
		}
		if !slices.Equal(dst, s.f32[e0:e1]) {
			return 0, fmt.Errorf("RowsFloat32Into rows [%d,%d) differ", r0, r1)
		}
		return 4 * len(dst), nil
	case 2: // Float32Into
		dst := make([]float32, len(s.f32))
		if err := t.Float32Into(ctx, dst); err != nil {
			return 0, err
		}
		if !slices.Equal(dst, s.f32) {
			return 0, fmt.Errorf("Float32Into differs")
		}
		return 4 * len(dst), nil
	case 3, 4: // BF16Into, F16Into
		dst := make([]byte, len(s.bf16))
		want, into := s.bf16, t.BF16Into
		if op == 4 {
			want, into = s.f16, t.F16Into
		}
		if err := into(ctx, dst); err != nil {
			return 0, err
		}
		if !bytes.Equal(dst, want) {
			return 0, fmt.Errorf("op %d differs", op)
		}
		return len(dst), nil
	case 5, 6: // a stream, read whole or closed after a random prefix
		dt := dts[rng.IntN(len(dts))]
		want := full[dt]
		if dt == format.F32 && t.DType() != format.F32 {
			want = f32Bytes(s.f32)
		}
		rd, err := t.Open(ctx, dt)
		if err != nil {
			return 0, err
		}
		var got []byte
		if op == 5 {
			got, err = io.ReadAll(rd)
		} else {
			got = make([]byte, rng.IntN(len(want)+1))
			_, err = io.ReadFull(rd, got)
			want = want[:len(got)]
		}
		if cerr := rd.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, err
		}
		if !bytes.Equal(got, want) {
			return 0, fmt.Errorf("stream as %s (%d bytes) differs", dt, len(got))
		}
		return len(got), nil
	case 7: // Verify, deep half the time
		deep := rng.IntN(2) == 0
		if err := rd.Verify(ctx, &reader.VerifyOptions{Deep: deep}); err != nil {
			return 0, err
		}
		return 0, nil
	}
	panic("unknown op")
}

func f32Bytes(f []float32) []byte {
	b, err := dtype.FromFloat32(nil, f, format.F32)
	if err != nil {
		panic(err)
	}
	return b
}
