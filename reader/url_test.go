package reader_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/writer"
)

// A fault is what the test server does with one request instead of, or
// while, serving it.
type fault int

const (
	serve     fault = iota
	status503       // answer 503
	reset           // close the connection before answering
	slow            // answer after the client's timeout
	truncate        // send half of the body, then close the connection
	short           // a 206 whose body is shorter than its Content-Range
	whole           // ignore Range: 200 with the whole file
	badRange        // a Content-Range for other bytes than asked
)

// rangeServer serves one file with http.ServeContent (which supports
// Range and If-Range), counting requests and body bytes, and applies
// faults chosen per request by plan (given the request's number from 1).
type rangeServer struct {
	mu      sync.Mutex
	data    []byte
	etag    string
	modTime time.Time
	plan    func(n int64) fault

	requests atomic.Int64
	bytes    atomic.Int64
	// active counts handlers still running: a client may have read a
	// whole body before the handler's Write returns and is counted.
	active atomic.Int64
	*httptest.Server
}

func newRangeServer(t *testing.T, data []byte, etag string) *rangeServer {
	s := &rangeServer{data: data, etag: etag, modTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s.Server = httptest.NewServer(http.HandlerFunc(s.handle))
	t.Cleanup(s.Close)
	return s
}

// setPlan sets the faults of the requests to come.
func (s *rangeServer) setPlan(plan func(n int64) fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.plan = plan
}

// replace swaps the served file, as a new upload would.
func (s *rangeServer) replace(data []byte, etag string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.data, s.etag, s.modTime = data, etag, s.modTime.Add(time.Hour)
}

type countingWriter struct {
	http.ResponseWriter
	n     *atomic.Int64
	limit int // stop after this many body bytes (-1: none)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.limit >= 0 && len(p) > w.limit {
		p = p[:w.limit]
	}
	n, err := w.ResponseWriter.Write(p)
	w.n.Add(int64(n))
	if w.limit >= 0 {
		w.limit -= n
		if w.limit == 0 {
			w.ResponseWriter.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}
	}
	return n, err
}

// settle waits until no handler is running, so that the counts include
// every response the client has seen.
func (s *rangeServer) settle(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); s.active.Load() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d handlers still running after 10 s", s.active.Load())
		}
	}
}

func (s *rangeServer) handle(w http.ResponseWriter, r *http.Request) {
	s.active.Add(1)
	defer s.active.Add(-1)
	n := s.requests.Add(1)
	s.mu.Lock()
	data, etag, mod := s.data, s.etag, s.modTime
	plan := s.plan
	s.mu.Unlock()
	f := serve
	if plan != nil {
		f = plan(n)
	}
	cw := &countingWriter{ResponseWriter: w, n: &s.bytes, limit: -1}
	switch f {
	case status503:
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	case reset:
		panic(http.ErrAbortHandler)
	case slow:
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
		return
	case truncate:
		var first, last int64
		fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last)
		cw.limit = int(last-first+1) / 2
	case short, badRange:
		var first, last int64
		fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-%d", &first, &last)
		last = min(last, int64(len(data))-1)
		body := data[first : last+1]
		if f == short {
			body = body[:len(body)/2]
		} else {
			first, last = first+1, last+1
		}
		w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", first, last, len(data)))
		w.Header().Set("ETag", etag)
		w.WriteHeader(http.StatusPartialContent)
		cw.Write(body)
		return
	case whole:
		r.Header.Del("Range")
	}
	if etag != "" {
		w.Header().Set("ETag", etag)
	}
	http.ServeContent(cw, r, "model.nwc", mod, bytes.NewReader(data))
}

// remoteFile is a file of many tensors, some large (read directly), some
// small (read through the block cache), with an index of several blocks.
func remoteFile(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := writer.New(&buf, nil)
	if err != nil {
		t.Fatal(err)
	}
	add := func(tt *codec.Tensor, id string, o *codec.EncodeOptions) {
		if err := w.WriteTensor(tt, id, o); err != nil {
			t.Fatal(err)
		}
	}
	big := make([]byte, 600<<10)
	for i := range big {
		big[i] = byte(i*7 + i>>9)
	}
	add(&codec.Tensor{Name: "big", DType: format.F32, Shape: []uint64{600 << 8}, Data: big}, codec.Raw, &codec.EncodeOptions{GroupBytes: 100 << 10})
	for i := range 3000 {
		d := make([]byte, 64)
		for j := range d {
			d[j] = byte(i + j)
		}
		add(&codec.Tensor{Name: fmt.Sprintf("layers.%d.norm", i), DType: format.F32, Shape: []uint64{16}, Data: d}, codec.Raw, nil)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decodeAllBytes(t *testing.T, r *reader.Reader) (map[string][]byte, error) {
	t.Helper()
	out := map[string][]byte{}
	for _, tt := range r.Tensors() {
		b, err := tt.Bytes()
		if err != nil {
			return out, err
		}
		out[tt.Name()] = b
	}
	return out, nil
}

func fastRetries(o *reader.URLOptions) *reader.URLOptions {
	o.RetryBase, o.RetryMax = time.Millisecond, 4*time.Millisecond
	return o
}

// TestOpenURLReadsOnlyIndex checks that opening a remote file reads its
// preamble, trailer and index and little else, in few requests, and that
// the reader's own count agrees with the server's.
func TestOpenURLReadsOnlyIndex(t *testing.T) {
	b := remoteFile(t)
	indexLen := int64(len(b)) - int64(format.TrailerLen) - int64(indexOffset(b))
	srv := newRangeServer(t, b, `"v1"`)
	const block = 16 << 10
	r, err := reader.OpenURL(context.Background(), srv.URL+"/model.nwc", &reader.URLOptions{BlockSize: block})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if len(r.Tensors()) != 3001 {
		t.Fatalf("%d tensors", len(r.Tensors()))
	}
	srv.settle(t)
	got, reqs := srv.bytes.Load(), srv.requests.Load()
	// The index and trailer cost the blocks that hold them, at most one
	// more than their size; the preamble costs the kilobyte the first
	// request asks for.
	limit := indexLen + int64(format.TrailerLen) + block + 1024
	t.Logf("file %d bytes, index %d: open made %d requests for %d bytes (limit %d)", len(b), indexLen, reqs, got, limit)
	if got > limit || got < indexLen {
		t.Errorf("open read %d bytes, want between the index's %d and %d", got, indexLen, limit)
	}
	if reqs > 3 {
		t.Errorf("open made %d requests, want at most 3", reqs)
	}
	if st := r.Stats(); st.Requests != reqs || st.Bytes != got || st.Retries != 0 {
		t.Errorf("Stats %+v, server saw %d requests and %d bytes", st, reqs, got)
	}
	// A small tensor in a block already read costs no request.
	tt, err := r.Tensor("layers.2999.norm")
	if err != nil {
		t.Fatal(err)
	}
	before := srv.requests.Load()
	if _, err := tt.Bytes(); err != nil {
		t.Fatal(err)
	}
	if srv.requests.Load() != before+1 && srv.requests.Load() != before {
		t.Errorf("one small tensor took %d requests", srv.requests.Load()-before)
	}
}

// TestOpenURLDecode decodes every tensor remotely and locally, with cache
// blocks small and large, and runs a deep Verify remotely.
func TestOpenURLDecode(t *testing.T) {
	files := map[string][]byte{"many": remoteFile(t), "everyCodec": buildFile(t, everyCodec, nil)}
	for name, b := range files {
		want, err := decodeAllBytes(t, openBytes(t, b, nil))
		if err != nil {
			t.Fatal(err)
		}
		srv := newRangeServer(t, b, "")
		for _, o := range []reader.URLOptions{{}, {BlockSize: 512, CacheBytes: 4 << 10}, {CacheBytes: -1}} {
			t.Run(fmt.Sprintf("%s/block=%d,cache=%d", name, o.BlockSize, o.CacheBytes), func(t *testing.T) {
				r, err := reader.OpenURL(context.Background(), srv.URL, &o)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				got, err := decodeAllBytes(t, r.Reader)
				if err != nil {
					t.Fatal(err)
				}
				for k, v := range want {
					if !bytes.Equal(got[k], v) {
						t.Errorf("tensor %s differs from the local decode", k)
					}
				}
				if err := r.Verify(context.Background(), &reader.VerifyOptions{Deep: true}); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// TestOpenURLFaults injects failures: transient ones are retried and the
// tensors come out right; persistent ones end in a clear error, never in
// wrong tensors.
func TestOpenURLFaults(t *testing.T) {
	b := remoteFile(t)
	want, err := decodeAllBytes(t, openBytes(t, b, nil))
	if err != nil {
		t.Fatal(err)
	}
	every := func(k int64, f fault) func(int64) fault {
		return func(n int64) fault {
			if n%k == 0 {
				return f
			}
			return serve
		}
	}
	always := func(f fault) func(int64) fault { return func(int64) fault { return f } }
	for _, tc := range []struct {
		name    string
		plan    func(int64) fault
		wantErr func(error) bool // nil: success with retries
	}{
		// Requests run concurrently, so one may meet several faults in a
		// row: the attempts allowed are more for the cases that succeed.
		{"503 every third", every(3, status503), nil},
		{"reset every other", every(2, reset), nil},
		{"slow every fourth", every(4, slow), nil},
		{"truncated every third", every(3, truncate), nil},
		{"short every other", every(2, short), nil},
		{"always 503", always(status503), func(err error) bool {
			var se *reader.HTTPStatusError
			return errors.As(err, &se) && se.Code == http.StatusServiceUnavailable && strings.Contains(err.Error(), "after 3 attempts")
		}},
		{"always truncated", always(truncate), func(err error) bool { return strings.Contains(err.Error(), "truncated") }},
		{"always reset", always(reset), func(err error) bool { return strings.Contains(err.Error(), "after 3 attempts") }},
		{"range ignored", always(whole), func(err error) bool { return errors.Is(err, reader.ErrNoRangeSupport) }},
		{"range ignored after opening", func(n int64) fault {
			if n > 4 {
				return whole
			}
			return serve
		}, func(err error) bool { return errors.Is(err, reader.ErrNoRangeSupport) }},
		{"other bytes", func(n int64) fault {
			if n > 4 {
				return badRange
			}
			return serve
		}, func(err error) bool { return strings.Contains(err.Error(), "malformed response") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRangeServer(t, b, `"abc"`)
			srv.setPlan(tc.plan)
			o := fastRetries(&reader.URLOptions{MaxAttempts: 3, Timeout: 100 * time.Millisecond, BlockSize: 4 << 10})
			if tc.wantErr == nil {
				o.MaxAttempts = 8
			}
			r, err := reader.OpenURL(context.Background(), srv.URL, o)
			var got map[string][]byte
			if err == nil {
				defer r.Close()
				got, err = decodeAllBytes(t, r.Reader)
			}
			for k, v := range got {
				if !bytes.Equal(want[k], v) {
					t.Fatalf("tensor %s decoded wrong", k)
				}
			}
			if tc.wantErr != nil {
				if err == nil || !tc.wantErr(err) {
					t.Fatalf("error %v, not the one expected", err)
				}
				t.Logf("error: %v", err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			// Go's transport itself retries a GET whose reused connection
			// was closed before answering: those show as server requests
			// the reader did not count.
			if st := r.Stats(); st.Retries == 0 && st.Requests == srv.requests.Load() {
				t.Errorf("no fault met: %+v", st)
			}
			if len(got) != len(want) {
				t.Fatalf("%d tensors decoded, want %d", len(got), len(want))
			}
		})
	}
}

// TestOpenURLChanged replaces the file on the server after opening: the
// next read fails with ErrRemoteChanged, whether the server identifies
// versions by ETag or by Last-Modified alone, and whatever the new size.
func TestOpenURLChanged(t *testing.T) {
	b := remoteFile(t)
	other := bytes.Clone(b)
	other[len(other)/2] ^= 1
	for _, tc := range []struct {
		name       string
		etag, next string
		data       []byte
	}{
		{"etag", `"v1"`, `"v2"`, other},
		{"weak etag", `W/"v1"`, `W/"v2"`, other},
		{"last-modified", "", "", other},
		{"shorter", `"v1"`, `"v2"`, b[:len(b)-100]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newRangeServer(t, b, tc.etag)
			r, err := reader.OpenURL(context.Background(), srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			srv.replace(tc.data, tc.next)
			_, err = decodeAllBytes(t, r.Reader)
			if !errors.Is(err, reader.ErrRemoteChanged) {
				t.Fatalf("error %v, want ErrRemoteChanged", err)
			}
		})
	}
}

// TestOpenURLCancel checks that the context given to OpenURL stops reads
// waiting on a server, and that Close makes later reads fail.
func TestOpenURLCancel(t *testing.T) {
	b := remoteFile(t)
	srv := newRangeServer(t, b, "")
	ctx, cancel := context.WithCancel(context.Background())
	r, err := reader.OpenURL(ctx, srv.URL, &reader.URLOptions{Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	srv.setPlan(func(int64) fault { return slow })
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	start := time.Now()
	tt, _ := r.Tensor("big")
	if _, err := tt.Bytes(); !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("cancelled read took %v", d)
	}
	srv.setPlan(nil)
	r.Close()
	if _, err := tt.Bytes(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("read after Close: %v, want os.ErrClosed", err)
	}
}
