package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConvertCalib converts stories260K with Hessians computed on one
// story, with and without sequential guidance (the default with --calib):
// both files decode, at the rate asked for, and they differ.
func TestConvertCalib(t *testing.T) {
	f := stories(t)
	text, err := os.ReadFile(f.text)
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(strings.TrimSpace(string(text)), "\n")
	dir := t.TempDir()
	story := filepath.Join(dir, "story.txt")
	if err := os.WriteFile(story, []byte(first+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var files [][]byte
	for _, extra := range [][]string{nil, {"--no-sequential"}} {
		out := filepath.Join(dir, "m.nwc")
		args := append([]string{"convert", f.st, "-o", out, "--codec", "ecsq", "--bits", "4", "--calib", story, "--tokenizer", f.tok}, extra...)
		if log := runOK(t, args...); !strings.Contains(log, "bits per weight") {
			t.Fatalf("convert %v printed %q", extra, log)
		}
		runOK(t, "eval", "ppl", "--model", out, "--tokenizer", f.tok, "--text", story)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, b)
	}
	if bytes.Equal(files[0], files[1]) {
		t.Error("--no-sequential changed nothing")
	}
	var out, errb bytes.Buffer
	if code := run([]string{"convert", f.st, "-o", filepath.Join(dir, "x.nwc"), "--codec", "ecsq", "--bits", "4", "--no-sequential"}, &out, &errb); code != 2 {
		t.Errorf("--no-sequential without --calib: exit %d, want 2 (%s)", code, errb.String())
	}
}
