package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRemoteInfoDecode runs nwc info and nwc decode on an http URL and
// compares with the same commands on the local file.
func TestRemoteInfoDecode(t *testing.T) {
	dir := "../../conformance/testdata/golden"
	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	for _, name := range []string{"lossless_dtypes.nwc", "lossy_tcq.nwc", "nwc_blob.nwc"} {
		local := filepath.Join(dir, name)
		url := srv.URL + "/" + name
		if got, want := runOK(t, "info", "--json", url), runOK(t, "info", "--json", local); got != want {
			t.Errorf("%s: info differs:\n%s\n%s", name, got, want)
		}
		var out, errb bytes.Buffer
		if code := run([]string{"info", url}, &out, &errb); code != 0 || !strings.Contains(errb.String(), "HTTP requests") {
			t.Errorf("%s: exit %d, stderr %q lacks the request count", name, code, errb.String())
		}
		tmp := t.TempDir()
		a, b := filepath.Join(tmp, "remote.safetensors"), filepath.Join(tmp, "local.safetensors")
		runOK(t, "decode", "--quiet", url, "-o", a)
		runOK(t, "decode", "--quiet", local, "-o", b)
		ab, _ := os.ReadFile(a)
		bb, _ := os.ReadFile(b)
		if len(ab) == 0 || !bytes.Equal(ab, bb) {
			t.Errorf("%s: remote decode differs from the local one", name)
		}
	}
	var out, errb bytes.Buffer
	if code := run([]string{"info", srv.URL + "/missing.nwc"}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "404") {
		t.Errorf("missing file: exit %d, %q", code, errb.String())
	}
}
