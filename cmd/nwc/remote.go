package main

import (
	"context"
	"fmt"
	"io"

	"github.com/nwcodec/nwc/reader"
)

// openNWC opens a local .nwc file, or through HTTP range requests one at
// an http or https URL. close also reports, for a URL, what was fetched
// on stderr.
func openNWC(ctx context.Context, name string, stderr io.Writer) (r *reader.Reader, close func() error, err error) {
	if !reader.IsURL(name) {
		rc, err := reader.Open(name, nil)
		if err != nil {
			return nil, nil, err
		}
		return rc.Reader, rc.Close, nil
	}
	u, err := reader.OpenURL(ctx, name, nil)
	if err != nil {
		return nil, nil, err
	}
	return u.Reader, func() error {
		s := u.Stats()
		fmt.Fprintf(stderr, "%s: %d HTTP requests, %d bytes fetched, %d retries\n", name, s.Requests, s.Bytes, s.Retries)
		return u.Close()
	}, nil
}
