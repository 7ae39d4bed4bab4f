package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
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
		args := append([]string{"convert", f.st, "-o", out, "--force", "--codec", "ecsq", "--bits", "4", "--calib", story, "--tokenizer", f.tok}, extra...)
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
	// The same bytes on one CPU: the calibration sums and the sequential
	// targets must not depend on how the work was split.
	one := filepath.Join(dir, "one.nwc")
	old := runtime.GOMAXPROCS(1)
	runOK(t, "convert", f.st, "-o", one, "--codec", "ecsq", "--bits", "4", "--calib", story, "--tokenizer", f.tok)
	runtime.GOMAXPROCS(old)
	if b, err := os.ReadFile(one); err != nil || !bytes.Equal(b, files[0]) {
		t.Errorf("sequential conversion on one CPU differs from the run on %d (%v)", old, err)
	}
	for _, extra := range [][]string{{"--no-sequential"}, {"--calib-tokens", "100"}, {"--calib", story, "--tokenizer", f.tok, "--calib-tokens", "-1"}} {
		var out, errb bytes.Buffer
		args := append([]string{"convert", f.st, "-o", filepath.Join(dir, "x.nwc"), "--codec", "ecsq", "--bits", "4"}, extra...)
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", extra, code, errb.String())
		}
	}
}

// TestBenchPPLSplit runs bench ppl with --split: the table is evaluated
// on the second half of the documents only, and the guided variant is
// calibrated on the first.
func TestBenchPPLSplit(t *testing.T) {
	if raceEnabled {
		t.Skip("bench ppl takes minutes under the race detector; its conversions' concurrency is tested in package convert, and the run without -race covers the rest")
	}
	f := stories(t)
	text, err := os.ReadFile(f.text)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(text)), "\n")
	if len(lines) < 2 {
		t.Fatalf("%d stories, want 2", len(lines))
	}
	short := func(s string) string { return s[:min(len(s), 400)] }
	dir := t.TempDir()
	both, second := filepath.Join(dir, "both.txt"), filepath.Join(dir, "second.txt")
	os.WriteFile(both, []byte(short(lines[0])+"\n"+short(lines[1])+"\n"), 0o644)
	os.WriteFile(second, []byte(short(lines[1])+"\n"), 0o644)
	var pts []struct {
		Variant string  `json:"variant"`
		Tokens  int     `json:"tokens"`
		NLL     float64 `json:"nll_per_token"`
	}
	out := runOK(t, "bench", "ppl", "--model", f.st, "--tokenizer", f.tok, "--text", both, "--split", "--heldout-generate", "0",
		"--bits", "5", "--variants", "ecsq + LDLQ", "--json")
	if err := json.Unmarshal([]byte(out), &pts); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	var ref struct {
		Tokens int     `json:"tokens"`
		NLL    float64 `json:"nll_per_token"`
	}
	if err := json.Unmarshal([]byte(runOK(t, "eval", "ppl", "--model", f.st, "--tokenizer", f.tok, "--text", second, "--json")), &ref); err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2 || pts[0].Tokens != ref.Tokens || pts[0].NLL != ref.NLL || pts[1].Variant != "ecsq + LDLQ" || pts[1].Tokens != ref.Tokens {
		t.Errorf("bench ppl --split = %+v; want fp32 and one ecsq + LDLQ point over the second story's %d tokens (nll %.4f)", pts, ref.Tokens, ref.NLL)
	}
	var errb bytes.Buffer
	if code := run([]string{"bench", "ppl", "--model", f.st, "--tokenizer", f.tok, "--text", second, "--split"}, io.Discard, &errb); code != 2 {
		t.Errorf("--split with one document: exit %d, want 2", code)
	}
}

// TestBenchPPLGenerated runs bench ppl calibrated on samples of one seed
// and judged on samples of another: the headline is the held-out set,
// the calibration text comes last, marked in-sample, and equal seeds are
// refused.
func TestBenchPPLGenerated(t *testing.T) {
	if raceEnabled {
		t.Skip("bench ppl takes ten minutes under the race detector; its conversions' concurrency is tested in package convert, and the run without -race covers the rest")
	}
	f := stories(t)
	var pts []struct {
		Variant string `json:"variant"`
		Tokens  int    `json:"tokens"`
		Sets    []struct {
			Set      string  `json:"set"`
			InSample bool    `json:"in_sample"`
			Tokens   int     `json:"tokens"`
			NLL      float64 `json:"nll_per_token"`
		} `json:"sets"`
	}
	out := runOK(t, "bench", "ppl", "--model", f.st, "--tokenizer", f.tok, "--heldout-generate", "600", "--calib-generate", "900",
		"--bits", "5", "--variants", "ecsq + LDLQ", "--json", "--quiet")
	if err := json.Unmarshal([]byte(out), &pts); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	if len(pts) != 2 || pts[1].Variant != "ecsq + LDLQ" {
		t.Fatalf("points %+v, want fp32 and ecsq + LDLQ", pts)
	}
	for _, p := range pts {
		// Each document's first token (BOS) is not scored.
		if len(p.Sets) != 2 || p.Tokens < 590 || p.Tokens >= 600 || p.Sets[0].Set != "generated (seed 1)" || p.Sets[0].InSample ||
			!p.Sets[1].InSample || p.Sets[1].Tokens < 590 || p.Sets[1].Tokens >= 600 {
			t.Errorf("%s: %d tokens, sets %+v; want 600 held-out tokens, then 600 of the calibration text marked in-sample", p.Variant, p.Tokens, p.Sets)
		}
	}
	if a, b := pts[0].Sets[0].NLL, pts[0].Sets[1].NLL; a == b {
		t.Errorf("fp32 nll %v on both sets: the held-out samples look like the calibration ones", a)
	}
	// The dev text as both calibration and evaluation text is in-sample.
	out = runOK(t, "bench", "ppl", "--model", f.st, "--tokenizer", f.tok, "--heldout-generate", "300", "--text", f.text, "--calib-text", f.text,
		"--bits", "5", "--variants", "ecsq", "--json", "--quiet")
	if err := json.Unmarshal([]byte(out), &pts); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	if s := pts[0].Sets; len(s) != 3 || s[0].InSample || !s[1].InSample || !s[2].InSample {
		t.Errorf("--text the calibration text: sets %+v, want it marked in-sample", s)
	}
	for _, bad := range [][]string{
		{"--calib-generate", "100", "--calib-seed", "1"},
		{"--heldout-generate", "0"},
		{"--split", "--heldout-generate", "0"},
		{"--calib-generate", "-1"},
		{"--calib-generate", "300", "--variants", "ecsq, no such variant"}, // one known name is not enough
	} {
		var errb bytes.Buffer
		args := append([]string{"bench", "ppl", "--model", f.st, "--tokenizer", f.tok, "--bits", "5"}, bad...)
		if code := run(args, io.Discard, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", bad, code, errb.String())
		}
	}
}

// TestConvertCalibGenerate converts with calibration text sampled from
// the model: the same command gives the same bytes, another seed or
// amount other bytes, and the text file plus samples differs from either
// alone.
func TestConvertCalibGenerate(t *testing.T) {
	if raceEnabled {
		t.Skip("three calibrated conversions with sampling take over ten minutes under the race detector; sampling's and conversion's concurrency are tested in packages llama and convert, and the run without -race covers the rest")
	}
	f := stories(t)
	dir := t.TempDir()
	conv := func(name string, extra ...string) []byte {
		out := filepath.Join(dir, name+".nwc")
		args := append([]string{"convert", f.st, "-o", out, "--bits", "4", "--tokenizer", f.tok, "--quiet"}, extra...)
		runOK(t, args...)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a := conv("a", "--calib-generate", "800")
	if !bytes.Equal(a, conv("a2", "--calib-generate", "800")) {
		t.Error("the same --calib-generate conversion gave different files")
	}
	others := map[string][]string{
		"seed":   {"--calib-generate", "800", "--calib-seed", "3"},
		"amount": {"--calib-generate", "400"},
		"text":   {"--calib-generate", "800", "--calib", f.text},
		"damp":   {"--calib-generate", "800", "--seq-damp", "0.05"},
	}
	for name, extra := range others {
		if bytes.Equal(a, conv(name, extra...)) {
			t.Errorf("%s: %v gave the same file as --calib-generate 800 alone", name, extra)
		}
	}
	for _, bad := range [][]string{
		{"--calib-generate", "100"}, // no tokenizer
		{"--calib-generate", "-5", "--tokenizer", f.tok},
		{"--seq-damp", "0.1"}, // nothing calibrated
		{"--seq-damp", "-1", "--calib-generate", "100", "--tokenizer", f.tok},
		{"--seq-damp", "NaN", "--calib-generate", "100", "--tokenizer", f.tok},
	} {
		var errb bytes.Buffer
		args := append([]string{"convert", f.st, "-o", filepath.Join(dir, "x.nwc"), "--bits", "4"}, bad...)
		if code := run(args, io.Discard, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2 (%s)", bad, code, errb.String())
		}
	}
}

func TestCapTokens(t *testing.T) {
	docs := [][]int{{1, 2, 3}, {1, 4}, {1, 5, 6, 7}}
	for _, tc := range []struct {
		max  int
		want [][]int
	}{
		{0, docs},
		{-1, docs},
		{2, [][]int{{1, 2}}},
		{3, [][]int{{1, 2, 3}}},
		{4, [][]int{{1, 2, 3}, {1}}},
		{7, [][]int{{1, 2, 3}, {1, 4}, {1, 5}}},
		{9, docs},
		{100, docs},
	} {
		got := capTokens(docs, tc.max)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("capTokens(%d) = %v, want %v", tc.max, got, tc.want)
		}
	}
	if fmt.Sprint(docs) != "[[1 2 3] [1 4] [1 5 6 7]]" {
		t.Errorf("capTokens changed its input: %v", docs)
	}
}

func TestOverlaps(t *testing.T) {
	calib := [][]int{{1, 2, 3}, {1, 4, 5, 6}, {1, 7}}
	for _, tc := range []struct {
		docs [][]int
		want bool
	}{
		{[][]int{{1, 9}, {1, 2}}, false},
		{[][]int{{1, 9}, {1, 4, 5, 6}}, true},
		{[][]int{{1, 7, 8, 9}}, true}, // the last calibration document, cut short
		{[][]int{{1, 2, 3, 4}}, false},
		{nil, false},
	} {
		if got := overlaps(tc.docs, calib); got != tc.want {
			t.Errorf("overlaps(%v) = %v, want %v", tc.docs, got, tc.want)
		}
	}
	if overlaps([][]int{{1}}, nil) {
		t.Error("no calibration text overlaps")
	}
}

// TestConvertNoLearned checks that --no-learned codes without the
// learned transform where the default uses it (stories260K at 2 bits, with
// the decoder referenced so that it costs the small file nothing): other
// bytes, no decoder, about the same rate.
func TestConvertNoLearned(t *testing.T) {
	f := stories(t)
	dir := t.TempDir()
	type info struct {
		BitsPerWeight float64 `json:"bits_per_weight"`
		BlobBytes     int64   `json:"blob_bytes"`
	}
	conv := func(name string, extra ...string) (info, []byte) {
		out := filepath.Join(dir, name)
		runOK(t, append([]string{"convert", f.st, "-o", out, "--bits", "2", "--codec-ref", "--quiet"}, extra...)...)
		var i info
		if err := json.Unmarshal([]byte(runOK(t, "info", "--json", out)), &i); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return i, b
	}
	with, wb := conv("with.nwc")
	without, nb := conv("without.nwc", "--no-learned")
	if bytes.Equal(wb, nb) || without.BlobBytes != 0 {
		t.Errorf("--no-learned gave the default's bytes (%v) or stored a decoder (%d bytes)", bytes.Equal(wb, nb), without.BlobBytes)
	}
	if math.Abs(with.BitsPerWeight-without.BitsPerWeight) > 0.05 {
		t.Errorf("bits per weight %.4f by default, %.4f with --no-learned: rate control should hold both at 2", with.BitsPerWeight, without.BitsPerWeight)
	}
}
