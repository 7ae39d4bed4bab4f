package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

type expected struct {
	Golden  map[string]map[string]string `json:"golden"`
	Invalid map[string]struct {
		Class string `json:"class"`
		Deep  bool   `json:"deep"`
	} `json:"invalid"`
}

func readExpected(t *testing.T) expected {
	t.Helper()
	b, err := os.ReadFile("../../conformance/testdata/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var e expected
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestGoldensValid: nwc-verify --deep exits 0 on every golden file.
func TestGoldensValid(t *testing.T) {
	e := readExpected(t)
	var files []string
	for name := range e.Golden {
		files = append(files, filepath.Join("../../conformance/testdata/golden", name))
	}
	var out, errb bytes.Buffer
	if code := run(append([]string{"--deep"}, files...), &out, &errb); code != 0 {
		t.Fatalf("exit %d:\n%s%s", code, out.String(), errb.String())
	}
	if n := strings.Count(out.String(), ": ok"); n != len(files) {
		t.Fatalf("%d ok lines for %d files:\n%s", n, len(files), out.String())
	}
}

// TestInvalidFiles: nwc-verify exits 1 on every invalid file and names the
// expected error class in --json output.
func TestInvalidFiles(t *testing.T) {
	e := readExpected(t)
	for name, want := range e.Invalid {
		path := filepath.Join("../../conformance/testdata/invalid", name)
		args := []string{"--json", path}
		if want.Deep {
			args = append([]string{"--deep"}, args...)
		}
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 1 {
			t.Errorf("%s: exit %d, want 1\n%s", name, code, out.String())
			continue
		}
		var res result
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out.String())
		}
		if res.Valid || res.Class != want.Class || len(res.Problems) == 0 {
			t.Errorf("%s: got %+v, want class %s", name, res, want.Class)
		}
	}
}

func TestUsageAndIOErrors(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(nil, &out, &errb); code != 2 {
		t.Errorf("no arguments: exit %d, want 2", code)
	}
	if code := run([]string{"--bogus", "x"}, &out, &errb); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
	if code := run([]string{filepath.Join(t.TempDir(), "missing.nwc")}, &out, &errb); code != 2 {
		t.Errorf("missing file: exit %d, want 2", code)
	}
	// A bad file among good ones makes the exit status 1, and every file
	// is still reported.
	out.Reset()
	code := run([]string{"../../conformance/testdata/golden/no_metadata.nwc", "../../conformance/testdata/invalid/bad_magic.nwc"}, &out, &errb)
	if code != 1 || !strings.Contains(out.String(), "no_metadata.nwc: ok") || !strings.Contains(out.String(), "bad magic") {
		t.Errorf("mixed files: exit %d\n%s", code, out.String())
	}
}

// TestWrongFileType: a file of another type is named as such.
func TestWrongFileType(t *testing.T) {
	p := filepath.Join(t.TempDir(), "model.safetensors")
	if err := os.WriteFile(p, append([]byte{2, 0, 0, 0, 0, 0, 0, 0}, "{}"...), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run([]string{p}, &out, &errb); code != 1 || !strings.Contains(out.String(), "not a .nwc file but a safetensors file") {
		t.Fatalf("exit %d, %q", code, out.String())
	}
}

// TestRemote: nwc-verify --deep reads http URLs, and a missing one is an
// I/O error (exit 2).
func TestRemote(t *testing.T) {
	srv := httptest.NewServer(http.FileServer(http.Dir("../../conformance/testdata")))
	defer srv.Close()
	var out, errb bytes.Buffer
	if code := run([]string{"--deep", srv.URL + "/golden/lossy_tcq.nwc", srv.URL + "/golden/nwc_blob.nwc"}, &out, &errb); code != 0 || strings.Count(out.String(), ": ok") != 2 {
		t.Fatalf("exit %d:\n%s%s", code, out.String(), errb.String())
	}
	out.Reset()
	if code := run([]string{"--json", srv.URL + "/invalid/bad_magic.nwc"}, &out, &errb); code != 1 || !strings.Contains(out.String(), `"class":"format"`) {
		t.Fatalf("bad_magic over http: exit %d: %s", code, out.String())
	}
	out.Reset()
	if code := run([]string{srv.URL + "/golden/none.nwc"}, &out, &errb); code != 2 {
		t.Fatalf("missing URL: exit %d: %s", code, out.String())
	}
}

// TestShardedSet: nwc-verify checks a sharded .nwc as a whole, given its
// directory or its index: valid when intact; invalid (exit 1, class
// format) with a part missing or from another set, checksum with a damaged
// part.
func TestShardedSet(t *testing.T) {
	golden := "../../conformance/testdata/golden/lossy_tcq.nwc"
	other := "../../conformance/testdata/golden/lossy_scalar.nwc"
	plan := strings.Repeat("c", 64)
	// A set of one part: a golden file whose metadata says it is part 1/1
	// cannot be made without rewriting it, so the set is written here.
	dir := t.TempDir()
	writeOnePartSet(t, dir, golden, plan)
	tests := []struct {
		name   string
		path   string
		break_ func()
		code   int
		class  string
	}{
		{"intact directory", dir, func() {}, 0, ""},
		{"intact index", filepath.Join(dir, "model.nwc.index.json"), func() {}, 0, ""},
		{"damaged part", dir, func() {
			p := filepath.Join(dir, "model-00001-of-00001.nwc")
			b, _ := os.ReadFile(p)
			b[40] ^= 0xff // inside the first section
			os.WriteFile(p, b, 0o644)
		}, 1, "checksum"},
		{"part of another set", dir, func() { writeOnePartSet(t, dir, other, strings.Repeat("d", 64)); rewriteIndexPlan(t, dir, plan) }, 1, "format"},
		{"missing part", dir, func() { os.Remove(filepath.Join(dir, "model-00001-of-00001.nwc")) }, 1, "format"},
	}
	for _, tc := range tests {
		tc.break_()
		var out, errb bytes.Buffer
		code := run([]string{"--json", "--deep", "--quiet", tc.path}, &out, &errb)
		var res result
		json.Unmarshal(out.Bytes(), &res)
		if code != tc.code || res.Class != tc.class {
			t.Errorf("%s: exit %d class %q, want %d %q\n%s%s", tc.name, code, res.Class, tc.code, tc.class, out.String(), errb.String())
		}
	}
}
