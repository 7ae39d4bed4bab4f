// Package shareddata locates the shared real-model data (../shared/data from
// the module root) for tests. The data is never copied into the project.
// When it is missing a test fails under CI (CI is set) and is skipped with
// a message elsewhere, so a missing file can never pass silently in CI.
package shareddata

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the shared data directory, or ends the test.
func Dir(tb testing.TB) string {
	tb.Helper()
	wd, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	root := wd
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			tb.Fatalf("go.mod not found above %s", wd)
		}
		root = parent
	}
	dir := filepath.Join(root, "..", "shared", "data")
	if _, err := os.Stat(dir); err != nil {
		missing(tb, err)
	}
	return dir
}

// Path returns the path of a file under the shared data directory, or ends
// the test if it is missing.
func Path(tb testing.TB, elem ...string) string {
	tb.Helper()
	p := filepath.Join(append([]string{Dir(tb)}, elem...)...)
	if _, err := os.Stat(p); err != nil {
		missing(tb, err)
	}
	return p
}

func missing(tb testing.TB, err error) {
	tb.Helper()
	if os.Getenv("CI") != "" {
		tb.Fatalf("CI is set but the shared model data is missing: %v", err)
	}
	tb.Skipf("shared model data not available (%v); put it in ../shared/data to run this test", err)
}
