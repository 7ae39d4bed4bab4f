package httpra

import (
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

func serveBytes(t *testing.T, data []byte) (*httptest.Server, *atomic.Int64) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

// TestReadAt compares random reads, small and large, at every kind of
// offset, with the bytes served, under several cache settings.
func TestReadAt(t *testing.T) {
	data := make([]byte, 300_001)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	srv, _ := serveBytes(t, data)
	for _, o := range []Options{{}, {BlockSize: 1000, CacheBytes: 5000, MaxRequestBytes: 3000}, {CacheBytes: -1}, {BlockSize: 7, ReadAhead: -1}} {
		f, err := Open(context.Background(), srv.URL, &o)
		if err != nil {
			t.Fatal(err)
		}
		if f.Size() != int64(len(data)) {
			t.Fatalf("size %d", f.Size())
		}
		for range 300 {
			off := rng.Int64N(int64(len(data)) + 10)
			n := rng.IntN(20000)
			if rng.IntN(10) == 0 {
				n = rng.IntN(200000)
			}
			p := make([]byte, n)
			got, err := f.ReadAt(p, off)
			want := max(0, min(int64(n), int64(len(data))-off))
			if int64(got) != want || !bytes.Equal(p[:got], data[min(off, int64(len(data))):min(off+int64(got), int64(len(data)))]) {
				t.Fatalf("%+v: ReadAt(%d bytes, %d) = %d, %v; want %d bytes", o, n, off, got, err, want)
			}
			if (int64(n) > want) != (err == io.EOF) {
				t.Fatalf("%+v: ReadAt(%d bytes, %d): err %v", o, n, off, err)
			}
		}
		f.Close()
	}
}

// TestEmptyRead: reading nothing asks the server nothing.
func TestEmptyRead(t *testing.T) {
	srv, reqs := serveBytes(t, make([]byte, 100_000))
	f, err := Open(context.Background(), srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, off := range []int64{0, 5000, 100_000, 200_000} {
		if n, err := f.ReadAt(nil, off); n != 0 || err != nil {
			t.Errorf("ReadAt(nil, %d) = %d, %v", off, n, err)
		}
	}
	if n := reqs.Load(); n != 1 {
		t.Errorf("%d requests, want only Open's", n)
	}
}

// TestReadAhead: small reads in file order cost one request per ReadAhead
// bytes; without read-ahead, one per block.
func TestReadAhead(t *testing.T) {
	data := make([]byte, 1<<20)
	srv, reqs := serveBytes(t, data)
	for _, tc := range []struct {
		ahead   int64
		maxReqs int64
	}{{64 << 10, 1<<20/(64<<10) + 2}, {-1, 1<<20/(4<<10) + 1}} {
		reqs.Store(0)
		f, err := Open(context.Background(), srv.URL, &Options{BlockSize: 4 << 10, CacheBytes: 1 << 20, ReadAhead: tc.ahead})
		if err != nil {
			t.Fatal(err)
		}
		p := make([]byte, 1000)
		for off := int64(0); off < int64(len(data)); off += 1000 {
			if _, err := f.ReadAt(p, off); err != nil && err != io.EOF {
				t.Fatal(err)
			}
		}
		if n := reqs.Load(); n > tc.maxReqs {
			t.Errorf("read-ahead %d: %d requests, want at most %d", tc.ahead, n, tc.maxReqs)
		}
		f.Close()
	}
}

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		s                  string
		first, last, total int64
		ok                 bool
	}{
		{"bytes 0-9/10", 0, 9, 10, true},
		{"bytes 5-5/*", 5, 5, -1, true},
		{"bytes 0-10/10", 0, 0, 0, false},
		{"bytes 9-0/10", 0, 0, 0, false},
		{"bytes -1-3/10", 0, 0, 0, false},
		{"bits 0-9/10", 0, 0, 0, false},
		{"bytes 0-9", 0, 0, 0, false},
		{"", 0, 0, 0, false},
	} {
		f, l, tot, err := parseContentRange(tc.s)
		if (err == nil) != tc.ok || tc.ok && (f != tc.first || l != tc.last || tot != tc.total) {
			t.Errorf("%q: %d %d %d %v", tc.s, f, l, tot, err)
		}
	}
}

// TestBackoff: waits double from RetryBase, are capped at RetryMax, and
// are jittered within the upper half.
func TestBackoff(t *testing.T) {
	f := &File{o: Options{RetryBase: 100 * time.Millisecond, RetryMax: time.Second}}
	for attempt, hi := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		hi *= time.Millisecond
		if attempt == 5 {
			attempt = 100 // far past the cap, no overflow
		}
		for range 50 {
			if d := f.backoff(attempt + 1); d < hi/2 || d > hi {
				t.Fatalf("attempt %d: wait %v outside [%v, %v]", attempt+1, d, hi/2, hi)
			}
		}
	}
}

// TestEmptyFile: a file of no bytes opens (a 416 for its first block) and
// reads as empty.
func TestEmptyFile(t *testing.T) {
	srv, _ := serveBytes(t, nil)
	f, err := Open(context.Background(), srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Size() != 0 {
		t.Fatalf("size %d", f.Size())
	}
	if n, err := f.ReadAt(make([]byte, 1), 0); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt: %d, %v", n, err)
	}
}

func TestOpenBadURL(t *testing.T) {
	for _, u := range []string{"ftp://x/y", "http://", "/local/path", "http://%zz"} {
		if _, err := Open(context.Background(), u, nil); err == nil {
			t.Errorf("%q opened", u)
		}
	}
}

// TestConcurrencyBound: a large read split into many requests, and many
// reads at once, never have more than MaxConcurrent requests in flight.
func TestConcurrencyBound(t *testing.T) {
	data := make([]byte, 1<<20)
	var inFlight, peak atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		time.Sleep(5 * time.Millisecond)
		http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(data))
		inFlight.Add(-1)
	}))
	defer srv.Close()
	f, err := Open(context.Background(), srv.URL, &Options{MaxConcurrent: 3, MaxRequestBytes: 16 << 10, BlockSize: 4 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	done := make(chan error)
	for i := range 4 {
		go func() {
			_, err := f.ReadAt(make([]byte, 256<<10), int64(i)<<18)
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	if p := peak.Load(); p > 3 || p < 2 {
		t.Fatalf("peak of %d requests in flight, want 2 or 3 (bound 3)", p)
	}
}

// TestRetryAfter: a 503 with Retry-After makes the next attempt wait that
// long, capped by RetryMax.
func TestRetryAfter(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "later", http.StatusServiceUnavailable)
			return
		}
		http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(make([]byte, 10)))
	}))
	defer srv.Close()
	for _, tc := range []struct {
		max        time.Duration
		minW, maxW time.Duration
	}{{2 * time.Second, time.Second, 1900 * time.Millisecond}, {200 * time.Millisecond, 90 * time.Millisecond, 900 * time.Millisecond}} {
		n.Store(0)
		start := time.Now()
		f, err := Open(context.Background(), srv.URL, &Options{RetryBase: time.Millisecond, RetryMax: tc.max})
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		if d := time.Since(start); d < tc.minW || d > tc.maxW {
			t.Errorf("RetryMax %v: opened after %v, want within [%v, %v]", tc.max, d, tc.minW, tc.maxW)
		}
	}
}
