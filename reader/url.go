package reader

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/nwcodec/nwc/internal/httpra"
)

// Errors of remote files, for errors.Is.
var (
	// ErrRemoteChanged reports a remote file that changed while it was
	// being read: its ETag, Last-Modified or size differ from the first
	// response's. No byte of the new version is ever returned.
	ErrRemoteChanged = httpra.ErrChanged
	// ErrNoRangeSupport reports a server that answers range requests with
	// the whole file.
	ErrNoRangeSupport = httpra.ErrNoRange
)

// An HTTPStatusError is a response with an unexpected HTTP status (after
// retries, for the transient ones).
type HTTPStatusError = httpra.StatusError

// URLOptions configure OpenURL. The zero value selects the defaults.
type URLOptions struct {
	// Options configure the Reader; Mmap is ignored.
	Options
	// Client sends the requests; nil means http.DefaultClient.
	Client *http.Client
	// Header is added to every request (authorization, for example).
	Header http.Header
	// BlockSize is the size and alignment of the blocks small reads
	// (index, trailer, small tensors) are cached in, default 32 KiB.
	BlockSize int
	// CacheBytes bounds the block cache, default 8 MiB; negative disables
	// it.
	CacheBytes int64
	// MaxAttempts bounds the attempts at one request, default 5.
	MaxAttempts int
	// RetryBase and RetryMax bound the wait before a retry: it doubles
	// from RetryBase (default 100 ms) up to RetryMax (default 5 s), and a
	// random part of its upper half is waited.
	RetryBase, RetryMax time.Duration
	// Timeout bounds one attempt at a request, body included, default 60 s.
	Timeout time.Duration
	// MaxRequests bounds the HTTP requests in flight at once, default 8.
	MaxRequests int
}

// URLStats count what a URLReader asked of the server.
type URLStats struct {
	Requests int64 // HTTP requests sent, failed ones included
	Retries  int64 // requests repeated after a transient failure
	Bytes    int64 // response body bytes received
}

// A URLReader is a Reader of a file served over HTTP(S), which it must
// close.
type URLReader struct {
	*Reader
	f *httpra.File
}

// IsURL reports whether name is an http or https URL, which OpenURL reads
// rather than Open.
func IsURL(name string) bool {
	l := strings.ToLower(name)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}

// OpenURL opens the .nwc file at an http or https URL through HTTP range
// requests. Opening reads the preamble, the trailer and the index, in a
// few requests; a tensor's bytes are fetched when it is decoded. The
// server must support range requests (a whole-file answer fails with
// ErrNoRangeSupport). Transient failures are retried with exponential
// backoff; a file replaced on the server while being read fails with
// ErrRemoteChanged. ctx governs every request of the returned reader,
// not only the opening: cancelling it, or Close, stops them.
func OpenURL(ctx context.Context, url string, opts *URLOptions) (*URLReader, error) {
	var o URLOptions
	if opts != nil {
		o = *opts
	}
	f, err := httpra.Open(ctx, url, &httpra.Options{
		Client: o.Client, Header: o.Header, BlockSize: o.BlockSize, CacheBytes: o.CacheBytes,
		MaxAttempts: o.MaxAttempts, RetryBase: o.RetryBase, RetryMax: o.RetryMax, Timeout: o.Timeout, MaxConcurrent: o.MaxRequests,
	})
	if err != nil {
		return nil, err
	}
	ro := o.Options
	ro.Mmap = false
	r, err := NewReader(f, f.Size(), &ro)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &URLReader{Reader: r, f: f}, nil
}

// Stats returns what the reader has asked of the server so far.
func (u *URLReader) Stats() URLStats {
	s := u.f.Stats()
	return URLStats{Requests: s.Requests, Retries: s.Retries, Bytes: s.Bytes}
}

// Close stops the requests in flight; later reads fail.
func (u *URLReader) Close() error { return u.f.Close() }
