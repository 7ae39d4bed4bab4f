package main

import (
	"bytes"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

// asNWC makes the test binary act as nwc, signal handling included, when
// bench scale or a signal test runs it as a child process (os.Executable
// is the test binary here).
const asNWC = "NWC_TEST_RUN_AS_NWC"

func TestMain(m *testing.M) {
	if os.Getenv(asNWC) == "1" {
		main()
	}
	os.Exit(m.Run())
}

// TestBenchScale runs the scale benchmark end to end on the tiny shape:
// generation, convert and decode in child processes, open and one-tensor
// measurements, decodes repeated into another directory, and a reused
// checkpoint on the second run.
func TestBenchScale(t *testing.T) {
	t.Setenv(asNWC, "1")
	dir, decDir := t.TempDir(), t.TempDir()
	out := runOK(t, "bench", "scale", "--shapes", "tiny", "--codecs", "lossless,ecsq", "--bits", "4", "--dir", dir,
		"--decode-dir", decDir, "--decode-runs", "3", "--json", "--quiet")
	var rows []scaleRow
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("%v in %q", err, out)
	}
	if len(rows) != 2 {
		t.Fatalf("%d rows, want 2", len(rows))
	}
	for _, r := range rows {
		if r.Shape != "tiny" || r.Weights != 133440 || r.ConvertSeconds <= 0 || r.DecodeSeconds <= 0 ||
			r.ConvertRSS <= 0 || r.DecodeRSS <= 0 || r.Tensors != 21 || r.TensorCost.Name != "model.layers.0.mlp.down_proj.weight" {
			t.Errorf("row %+v", r)
		}
		if r.BytesRead < r.IndexBytes || r.BytesRead > r.IndexBytes+200 {
			t.Errorf("%s: open read %d bytes for a %d-byte index", r.Codec, r.BytesRead, r.IndexBytes)
		}
		runs := slices.Clone(r.DecodeRuns)
		slices.Sort(runs)
		if len(runs) != 3 || runs[1] != r.DecodeSeconds {
			t.Errorf("%s: decode runs %v, reported %g: want 3 runs and their median", r.Codec, r.DecodeRuns, r.DecodeSeconds)
		}
	}
	if left, _ := os.ReadDir(decDir); len(left) != 0 {
		t.Errorf("decode left %d files in --decode-dir", len(left))
	}
	if rows[0].GenerateSeconds <= 0 || rows[1].GenerateSeconds != 0 {
		t.Errorf("generate seconds %g, %g: want the first row only", rows[0].GenerateSeconds, rows[1].GenerateSeconds)
	}
	if b := rows[1].BitsPerWeight; b < 3.9 || b > 4.1 {
		t.Errorf("ecsq at 4 bits: %g bits per weight", b)
	}
	// Second run: the checkpoint is reused, and the table is markdown.
	var stdout, stderr bytes.Buffer
	if code := run([]string{"bench", "scale", "--shapes", "tiny", "--codecs", "raw", "--dir", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if strings.Contains(stderr.String(), "generate") {
		t.Errorf("regenerated a valid checkpoint: %s", stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[2], "| tiny | 0.00 G | raw |") || strings.Contains(lines[2], "median") {
		t.Errorf("table %q", stdout.String())
	}
	if code := run([]string{"bench", "scale", "--shapes", "tiny", "--decode-runs", "0"}, &stdout, &stderr); code != 2 {
		t.Errorf("--decode-runs 0: exit %d, want 2", code)
	}
}
