package reader_test

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEMatchesExample: every line of the README's Go API snippet is a
// line of Example, so the README shows code that runs.
func TestREADMEMatchesExample(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## Go API\n")
	if !ok {
		t.Fatal("README has no Go API section")
	}
	_, snippet, ok := strings.Cut(section, "```go\n")
	snippet, _, ok2 := strings.Cut(snippet, "```")
	if !ok || !ok2 {
		t.Fatal("README's Go API section has no go code block")
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(ex), "\n") {
		have[strings.TrimSpace(l)] = true
	}
	n := 0
	for _, l := range strings.Split(snippet, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l == "if err != nil { ... }" {
			continue
		}
		n++
		if !have[l] {
			t.Errorf("README line not in Example: %s", l)
		}
	}
	if n < 10 {
		t.Fatalf("README snippet has %d lines", n)
	}
}
