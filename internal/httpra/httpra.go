// Package httpra reads a file served over HTTP(S) as an io.ReaderAt, one
// range request at a time, so that a reader which needs a few sections of
// a large remote file fetches only those.
//
// Small reads go through a size-bounded LRU cache of aligned blocks (the
// index and trailer of a .nwc file are read in several small pieces); a
// read of several blocks or more is fetched as it is, split into
// concurrent requests, and not cached (tensor data is read once).
//
// The first response fixes the file's size (from Content-Range) and its
// validator (ETag, else Last-Modified). Every later request carries it in
// If-Range and every later response is checked against it, so a file
// replaced while being read yields ErrChanged, never bytes of two
// versions. Transient failures (5xx, 408, 429, timeouts, reset or
// truncated connections) are retried with exponential backoff and jitter
// (or the server's Retry-After, up to RetryMax), a bounded number of times; a server that ignores Range is refused with
// ErrNoRange rather than downloaded whole.
package httpra

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrChanged reports that the remote file is not the one first opened:
	// its validator, size or range answers differ from the first response's.
	ErrChanged = errors.New("httpra: remote file changed while being read")
	// ErrNoRange reports a server that answers range requests with the
	// whole file.
	ErrNoRange = errors.New("httpra: server does not support range requests")
	// ErrProtocol reports a response that contradicts its request, such as
	// a Content-Range for other bytes than were asked for.
	ErrProtocol = errors.New("httpra: malformed response")
	// errTruncated marks a body shorter than its Content-Range said: the
	// connection broke, so the request is worth retrying.
	errTruncated = errors.New("httpra: response body truncated")
)

// A StatusError is an HTTP response with a status other than the partial
// content asked for.
type StatusError struct {
	URL    string
	Code   int
	Status string
	// RetryAfter is the wait the server asked for (Retry-After in
	// seconds), 0 if none.
	RetryAfter time.Duration
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("httpra: GET %s: %s", e.URL, e.Status)
}

// Temporary reports whether a later attempt may succeed: server errors,
// request timeouts and rate limiting.
func (e *StatusError) Temporary() bool {
	return e.Code >= 500 || e.Code == http.StatusRequestTimeout || e.Code == http.StatusTooManyRequests
}

// Options configure Open. The zero value selects the defaults.
type Options struct {
	// Client sends the requests; nil means http.DefaultClient.
	Client *http.Client
	// Header is added to every request (authorization, for example).
	Header http.Header
	// BlockSize is the size and alignment of cached blocks, default 32 KiB.
	BlockSize int
	// CacheBytes bounds the block cache, default 8 MiB; negative disables
	// it.
	CacheBytes int64
	// MaxAttempts bounds the attempts at one request, default 5.
	MaxAttempts int
	// RetryBase and RetryMax bound the backoff before a retry: it doubles
	// from RetryBase (default 100 ms) up to RetryMax (default 5 s), and a
	// random half of it is waited.
	RetryBase, RetryMax time.Duration
	// Timeout bounds one attempt, body included, default 60 s.
	Timeout time.Duration
	// MaxConcurrent bounds the requests in flight at once, default 8.
	MaxConcurrent int
	// MaxRequestBytes bounds the bytes asked for in one request, default
	// 8 MiB: a larger read becomes several concurrent requests.
	MaxRequestBytes int64
	// ReadAhead is how far a small read that continues the previous one
	// fetches beyond itself into the cache, default 1 MiB, at most a
	// quarter of the cache; negative disables it. Reading a file's small
	// sections in order (Verify, decoding small chunk groups) then costs
	// one request per ReadAhead bytes, not one per section.
	ReadAhead int64
}

func (o Options) withDefaults() Options {
	if o.Client == nil {
		o.Client = http.DefaultClient
	}
	if o.BlockSize <= 0 {
		o.BlockSize = 32 << 10
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = 8 << 20
	}
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.RetryBase <= 0 {
		o.RetryBase = 100 * time.Millisecond
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 5 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = 8
	}
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = 8 << 20
	}
	o.MaxRequestBytes = max(o.MaxRequestBytes, int64(o.BlockSize))
	if o.ReadAhead == 0 {
		o.ReadAhead = 1 << 20
	}
	o.ReadAhead = min(o.ReadAhead, o.CacheBytes/4, o.MaxRequestBytes)
	return o
}

// Stats count what a File asked of the server.
type Stats struct {
	Requests int64 // HTTP requests sent, failed ones included
	Retries  int64 // requests repeated after a transient failure
	Bytes    int64 // response body bytes received
}

// A File is a remote file read through range requests. It is safe for
// concurrent use.
type File struct {
	url    string
	o      Options
	ctx    context.Context
	cancel context.CancelFunc
	size   int64
	// etag is the strong ETag of the first response; weak is a weak one,
	// which If-Range may not carry but responses are still compared with.
	etag, weak, lastMod string
	sem                 chan struct{}
	closed              atomic.Bool
	head                []byte // the file's first bytes, from the probe

	mu        sync.Mutex
	lru       *list.List // of *block, most recent first
	blocks    map[int64]*list.Element
	maxBlocks int
	// next is the block after the last run fetched into the cache: a
	// miss there is a sequential read, worth reading ahead.
	next int64

	requests, retries, bytes atomic.Int64
}

// probeBytes is what Open asks for: enough for a file's magic and
// preamble, which are kept, not so much that opening a file whose other
// reads are at its end costs a whole block more.
const probeBytes = 1024

type block struct {
	i    int64
	data []byte // immutable once cached
}

// Open probes the file at rawURL with a range request for its first
// kilobyte, which gives its size and validator. ctx governs every request of the
// File, not only the probe: cancelling it, or Close, stops them.
func Open(ctx context.Context, rawURL string, opts *Options) (*File, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("httpra: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("httpra: %q is not an http or https URL", rawURL)
	}
	var o Options
	if opts != nil {
		o = *opts
	}
	o = o.withDefaults()
	f := &File{url: rawURL, o: o, size: -1, sem: make(chan struct{}, o.MaxConcurrent),
		lru: list.New(), blocks: map[int64]*list.Element{}}
	if o.CacheBytes > 0 {
		f.maxBlocks = int(min(o.CacheBytes/int64(o.BlockSize), 1<<20))
	}
	f.ctx, f.cancel = context.WithCancel(ctx)
	head := make([]byte, min(o.BlockSize, probeBytes))
	n, err := f.fetch(head, 0)
	if err != nil {
		f.cancel()
		return nil, err
	}
	f.head = head[:n]
	return f, nil
}

// Size returns the file's size.
func (f *File) Size() int64 { return f.size }

// URL returns the URL the file was opened with.
func (f *File) URL() string { return f.url }

// Stats returns what the File has asked of the server so far.
func (f *File) Stats() Stats {
	return Stats{Requests: f.requests.Load(), Retries: f.retries.Load(), Bytes: f.bytes.Load()}
}

// Close stops the requests in flight and empties the cache; later reads
// fail with os.ErrClosed.
func (f *File) Close() error {
	f.closed.Store(true)
	f.cancel()
	f.mu.Lock()
	f.lru.Init()
	clear(f.blocks)
	f.mu.Unlock()
	return nil
}

// ReadAt implements io.ReaderAt.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if f.closed.Load() {
		return 0, os.ErrClosed
	}
	if off < 0 {
		return 0, fmt.Errorf("httpra: negative offset %d", off)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if off >= f.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), f.size-off))
	var err error
	bs := int64(f.o.BlockSize)
	if off+int64(n) <= int64(len(f.head)) {
		copy(p, f.head[off:off+int64(n)])
	} else if f.maxBlocks == 0 || int64(n) >= 4*bs {
		err = f.readDirect(p[:n], off)
	} else {
		err = f.readCached(p[:n], off)
	}
	if err != nil {
		return 0, err
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// readDirect fetches p's bytes in requests of at most MaxRequestBytes,
// concurrently (the semaphore bounds them).
func (f *File) readDirect(p []byte, off int64) error {
	step := f.o.MaxRequestBytes
	if int64(len(p)) <= step {
		_, err := f.fetch(p, off)
		return err
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for s := int64(0); s < int64(len(p)); s += step {
		e := min(s+step, int64(len(p)))
		wg.Go(func() {
			if _, err := f.fetch(p[s:e], off+s); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return first
}

// readCached fills p from the blocks that hold it, fetching each run of
// missing blocks in one request.
func (f *File) readCached(p []byte, off int64) error {
	bs := int64(f.o.BlockSize)
	b0, b1 := off/bs, (off+int64(len(p))-1)/bs
	have := make([][]byte, b1-b0+1)
	f.mu.Lock()
	for i := b0; i <= b1; i++ {
		if el, ok := f.blocks[i]; ok {
			f.lru.MoveToFront(el)
			have[i-b0] = el.Value.(*block).data
		}
	}
	next := f.next
	f.mu.Unlock()
	lastBlock := (f.size - 1) / bs
	for i := b0; i <= b1; {
		if have[i-b0] != nil {
			i++
			continue
		}
		j := i
		for j+1 <= b1 && have[j+1-b0] == nil {
			j++
		}
		// A read continuing the last fetch takes the blocks after it too,
		// up to the first one cached.
		k := j
		if i == next && f.o.ReadAhead > 0 && j == b1 {
			for stop := min(j+f.o.ReadAhead/bs, lastBlock); k < stop && !f.cached(k+1); k++ {
			}
		}
		start, end := i*bs, min((k+1)*bs, f.size)
		buf := make([]byte, end-start)
		if _, err := f.fetch(buf, start); err != nil {
			return err
		}
		for m := i; m <= k; m++ {
			d := buf[(m-i)*bs : min((m-i+1)*bs, end-start) : min((m-i+1)*bs, end-start)]
			if m <= j {
				have[m-b0] = d
			}
			f.store(m, d)
		}
		f.mu.Lock()
		f.next = k + 1
		f.mu.Unlock()
		i = j + 1
	}
	for i := b0; i <= b1; i++ {
		d := have[i-b0]
		bstart := i * bs
		lo := max(off, bstart)
		hi := min(off+int64(len(p)), bstart+int64(len(d)))
		copy(p[lo-off:hi-off], d[lo-bstart:hi-bstart])
	}
	return nil
}

func (f *File) cached(i int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.blocks[i]
	return ok
}

// store caches block i, evicting the least recently used blocks beyond
// the cache's bound.
func (f *File) store(i int64, data []byte) {
	if f.maxBlocks == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if el, ok := f.blocks[i]; ok {
		f.lru.MoveToFront(el)
		return
	}
	f.blocks[i] = f.lru.PushFront(&block{i: i, data: data})
	for f.lru.Len() > f.maxBlocks {
		el := f.lru.Back()
		f.lru.Remove(el)
		delete(f.blocks, el.Value.(*block).i)
	}
}

// fetch fills dst with the bytes at off, retrying transient failures. The
// probe (size not yet known) may get fewer bytes than dst, at the end of
// the file; it returns how many.
func (f *File) fetch(dst []byte, off int64) (int, error) {
	for attempt := 1; ; attempt++ {
		n, err := f.attempt(dst, off)
		if err == nil {
			return n, nil
		}
		if f.ctx.Err() != nil {
			if f.closed.Load() {
				return 0, os.ErrClosed
			}
			return 0, fmt.Errorf("httpra: GET %s: %w", f.url, context.Cause(f.ctx))
		}
		if !retryable(err) {
			return 0, err
		}
		if attempt >= f.o.MaxAttempts {
			return 0, fmt.Errorf("httpra: bytes %d-%d of %s: giving up after %d attempts: %w",
				off, off+int64(len(dst))-1, f.url, attempt, err)
		}
		f.retries.Add(1)
		wait := f.backoff(attempt)
		// A server's Retry-After is honoured up to RetryMax.
		if se := (*StatusError)(nil); errors.As(err, &se) && se.RetryAfter > wait {
			wait = min(se.RetryAfter, f.o.RetryMax)
		}
		t := time.NewTimer(wait)
		select {
		case <-f.ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

// backoff returns the wait before attempt+1: exponential, capped, with
// full jitter over its upper half so that clients retrying together
// spread out.
func (f *File) backoff(attempt int) time.Duration {
	d := f.o.RetryMax
	if attempt < 30 {
		d = min(f.o.RetryBase<<(attempt-1), f.o.RetryMax)
	}
	return d/2 + rand.N(d/2+1)
}

func retryable(err error) bool {
	var se *StatusError
	switch {
	case errors.As(err, &se):
		return se.Temporary()
	case errors.Is(err, ErrChanged), errors.Is(err, ErrNoRange), errors.Is(err, ErrProtocol):
		return false
	}
	// Transport errors: timeouts, resets, refused or broken connections,
	// truncated bodies.
	return true
}

// attempt makes one request for dst's bytes at off.
func (f *File) attempt(dst []byte, off int64) (int, error) {
	select {
	case f.sem <- struct{}{}:
	case <-f.ctx.Done():
		return 0, f.ctx.Err()
	}
	defer func() { <-f.sem }()
	ctx, cancel := context.WithTimeout(f.ctx, f.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.url, nil)
	if err != nil {
		return 0, fmt.Errorf("httpra: %w", err)
	}
	for k, v := range f.o.Header {
		req.Header[k] = v
	}
	end := off + int64(len(dst)) - 1
	req.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", off, end))
	probe := f.size < 0
	switch {
	case probe:
	case f.etag != "":
		req.Header.Set("If-Range", f.etag)
	case f.weak == "" && f.lastMod != "":
		req.Header.Set("If-Range", f.lastMod)
	}
	// Compressed bodies would make Content-Range describe other bytes.
	req.Header.Set("Accept-Encoding", "identity")
	f.requests.Add(1)
	resp, err := f.o.Client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if probe {
		f.etag, f.weak, f.lastMod = "", "", resp.Header.Get("Last-Modified")
		if et := resp.Header.Get("ETag"); strings.HasPrefix(et, "W/") {
			f.weak = et
		} else {
			f.etag = et
		}
	} else if err := f.checkValidator(resp); err != nil {
		return 0, err
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
	case http.StatusOK:
		if probe && resp.ContentLength == 0 {
			// An empty file has no range to send.
			f.size = 0
			return 0, nil
		}
		if req.Header.Get("If-Range") != "" && resp.Header.Get("ETag") == "" && resp.Header.Get("Last-Modified") == "" {
			// The server found the validator stale and sends the new
			// file, without saying which version it is.
			return 0, fmt.Errorf("%w: %s: If-Range did not match", ErrChanged, f.url)
		}
		return 0, fmt.Errorf("%w: %s answered a range request with the whole file", ErrNoRange, f.url)
	case http.StatusRequestedRangeNotSatisfiable:
		if probe {
			// Only an empty file has no first byte.
			if total, ok := unsatisfiedTotal(resp.Header.Get("Content-Range")); ok && total == 0 {
				f.size = 0
				return 0, nil
			}
			return 0, fmt.Errorf("%w: %s: 416 for its first bytes", ErrProtocol, f.url)
		}
		return 0, fmt.Errorf("%w: %s: bytes %d-%d no longer exist", ErrChanged, f.url, off, end)
	default:
		se := &StatusError{URL: f.url, Code: resp.StatusCode, Status: resp.Status}
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			se.RetryAfter = time.Duration(min(secs, 1<<20)) * time.Second
		}
		return 0, se
	}
	start, last, total, err := parseContentRange(resp.Header.Get("Content-Range"))
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrProtocol, f.url, err)
	}
	if probe {
		if total < 0 {
			return 0, fmt.Errorf("%w: %s: Content-Range gives no size", ErrProtocol, f.url)
		}
		f.size = total
		end = min(end, total-1)
	} else if total >= 0 && total != f.size {
		return 0, fmt.Errorf("%w: %s: size %d, was %d", ErrChanged, f.url, total, f.size)
	}
	if start != off || last != end {
		return 0, fmt.Errorf("%w: %s: asked for bytes %d-%d, got %d-%d", ErrProtocol, f.url, off, end, start, last)
	}
	n := int(end - off + 1)
	m, err := io.ReadFull(resp.Body, dst[:n])
	f.bytes.Add(int64(m))
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, fmt.Errorf("%w: %s: %d of %d bytes at %d", errTruncated, f.url, m, n, off)
		}
		return 0, err
	}
	return n, nil
}

// checkValidator compares a response's ETag and Last-Modified with the
// first response's; a server may leave them out, but not change them.
func (f *File) checkValidator(resp *http.Response) error {
	if et := resp.Header.Get("ETag"); et != "" && f.etag+f.weak != "" && et != f.etag && et != f.weak {
		return fmt.Errorf("%w: %s: ETag %s, was %s", ErrChanged, f.url, et, f.etag+f.weak)
	}
	if lm := resp.Header.Get("Last-Modified"); lm != "" && f.lastMod != "" && lm != f.lastMod {
		return fmt.Errorf("%w: %s: Last-Modified %s, was %s", ErrChanged, f.url, lm, f.lastMod)
	}
	return nil
}

// parseContentRange parses "bytes FIRST-LAST/TOTAL"; total is -1 for "*".
func parseContentRange(s string) (first, last, total int64, err error) {
	rest, ok := strings.CutPrefix(s, "bytes ")
	if !ok {
		return 0, 0, 0, fmt.Errorf("Content-Range %q", s)
	}
	rng, tot, ok := strings.Cut(rest, "/")
	a, b, ok2 := strings.Cut(rng, "-")
	if !ok || !ok2 {
		return 0, 0, 0, fmt.Errorf("Content-Range %q", s)
	}
	first, err1 := strconv.ParseInt(a, 10, 64)
	last, err2 := strconv.ParseInt(b, 10, 64)
	total = -1
	var err3 error
	if tot != "*" {
		total, err3 = strconv.ParseInt(tot, 10, 64)
	}
	if err1 != nil || err2 != nil || err3 != nil || first < 0 || last < first || (tot != "*" && last >= total) {
		return 0, 0, 0, fmt.Errorf("Content-Range %q", s)
	}
	return first, last, total, nil
}

// unsatisfiedTotal parses the "bytes */TOTAL" of a 416 response.
func unsatisfiedTotal(s string) (int64, bool) {
	t, ok := strings.CutPrefix(s, "bytes */")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(t, 10, 64)
	return n, err == nil && n >= 0
}
