package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/nwcodec/nwc/bench/synth"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/internal/shareddata"
)

// buildTools builds nwc and nwc-verify into dir.
func buildTools(t *testing.T, dir string) (nwc, verify string) {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to build the binaries: %v", err)
	}
	nwc, verify = filepath.Join(dir, "nwc"), filepath.Join(dir, "nwc-verify")
	for _, b := range []struct{ out, pkg string }{{nwc, "."}, {verify, "../nwc-verify"}} {
		cmd := exec.Command(goTool, "build", "-o", b.out, b.pkg)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", b.pkg, err, out)
		}
	}
	return nwc, verify
}

// engineEnv drops the job engines' variables from the test's own
// environment, so that only what a case sets is seen.
func engineEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "JOB_COMPLETION_INDEX=") && !strings.HasPrefix(kv, "SLURM_") {
			env = append(env, kv)
		}
	}
	return env
}

func runProc(t *testing.T, env []string, bin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(engineEnv(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s (env %v): %v\n%s%s", filepath.Base(bin), strings.Join(args, " "), env, err, out.String(), errb.String())
	}
	return out.String()
}

// TestDistributedProcesses runs the recipe of docs/distributed.md as
// separate processes: nwc plan, then one nwc convert --part auto per part,
// all at once, each told its index only by a job engine's environment
// variables (a Kubernetes Indexed Job's, a Slurm array's), then nwc merge
// and nwc-verify. The merged file must be byte for byte the file one
// process converts from the same plan, at the target rate ± 1 %.
func TestDistributedProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the tools and runs a dozen processes")
	}
	dir := t.TempDir()
	nwc, verify := buildTools(t, dir)
	tiny := filepath.Join(dir, "tiny")
	s, err := synth.Lookup("tiny")
	if err != nil {
		t.Fatal(err)
	}
	if err := synth.Generate(context.Background(), tiny, s, &synth.Options{Seed: 3, ShardBytes: 60_000}); err != nil {
		t.Fatal(err)
	}
	stories := shareddata.Path(t, "stories260K", "stories260K.safetensors")
	tests := []struct {
		name  string
		in    string
		flags []string
		parts int
		env   func(i int) []string // part i, 0-based
	}{
		{"kubernetes indexed job", stories, []string{"--codec", "nwc", "--bits", "4"}, 4, func(i int) []string {
			return []string{fmt.Sprintf("JOB_COMPLETION_INDEX=%d", i)}
		}},
		{"slurm array 1-3", tiny, []string{"--codec", "nwc", "--bits", "4", "--rate", "model"}, 3, func(i int) []string {
			return []string{fmt.Sprintf("SLURM_ARRAY_TASK_ID=%d", i+1), "SLURM_ARRAY_TASK_MIN=1", "SLURM_ARRAY_TASK_STEP=1", "SLURM_ARRAY_TASK_COUNT=3"}
		}},
		{"slurm array 0-20:10", tiny, []string{"--codec", "ecsq", "--bits", "3"}, 3, func(i int) []string {
			return []string{fmt.Sprintf("SLURM_ARRAY_TASK_ID=%d", 10*i), "SLURM_ARRAY_TASK_MIN=0", "SLURM_ARRAY_TASK_STEP=10"}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			plan := filepath.Join(work, "plan.json")
			parts := filepath.Join(work, "parts")
			runProc(t, nil, nwc, append([]string{"plan", tc.in, "-o", plan, "--parts", fmt.Sprint(tc.parts), "--quiet"}, tc.flags...)...)
			var wg sync.WaitGroup
			errs := make([]error, tc.parts)
			for i := range tc.parts {
				wg.Add(1)
				go func() {
					defer wg.Done()
					cmd := exec.Command(nwc, "convert", tc.in, "--plan", plan, "--part", "auto", "-o", parts, "--quiet", "--jobs", "1")
					cmd.Env = append(engineEnv(), tc.env(i)...)
					if out, err := cmd.CombinedOutput(); err != nil {
						errs[i] = fmt.Errorf("part %d: %v\n%s", i+1, err, out)
					}
				}()
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			for i := 1; i <= tc.parts; i++ {
				if _, err := os.Stat(filepath.Join(parts, format.PartName(i, tc.parts))); err != nil {
					t.Fatal(err)
				}
			}
			runProc(t, nil, verify, "--deep", "--quiet", parts)
			merged := filepath.Join(work, "merged.nwc")
			runProc(t, nil, nwc, "merge", parts, "-o", merged, "--quiet")
			one := filepath.Join(work, "one.nwc")
			runProc(t, nil, nwc, "convert", tc.in, "--plan", plan, "-o", one, "--quiet")
			a, _ := os.ReadFile(one)
			b, _ := os.ReadFile(merged)
			if len(a) == 0 || !bytes.Equal(a, b) {
				t.Fatalf("merged parts (%d bytes) differ from the one-process file (%d bytes)", len(b), len(a))
			}
			var info fileInfo
			if err := json.Unmarshal([]byte(runProc(t, nil, nwc, "info", "--json", merged)), &info); err != nil {
				t.Fatal(err)
			}
			target := 0.0
			for i, f := range tc.flags {
				if f == "--bits" {
					fmt.Sscan(tc.flags[i+1], &target)
				}
			}
			t.Logf("%.4f bits per weight, %d bytes", info.BitsPerWeight, info.FileBytes)
			if math.Abs(info.BitsPerWeight-target) > 0.01*target {
				t.Errorf("%.4f bits per weight, want %g ± 1 %%", info.BitsPerWeight, target)
			}
		})
	}
}

// TestResolvePart reads --part values and job engines' variables.
func TestResolvePart(t *testing.T) {
	tests := []struct {
		spec string
		env  map[string]string
		want int // 0 with wantErr false: no part
		err  bool
	}{
		{"", nil, 0, false},
		{"2/4", nil, 2, false},
		{"4", nil, 4, false},
		{"2/3", nil, 0, true},
		{"0/4", nil, 0, true},
		{"5", nil, 0, true},
		{"x", nil, 0, true},
		{"auto", nil, 0, true},
		{"auto", map[string]string{"JOB_COMPLETION_INDEX": "0"}, 1, false},
		{"auto", map[string]string{"JOB_COMPLETION_INDEX": "3"}, 4, false},
		{"auto", map[string]string{"JOB_COMPLETION_INDEX": "4"}, 0, true},
		{"auto", map[string]string{"JOB_COMPLETION_INDEX": "-1"}, 0, true},
		{"auto", map[string]string{"JOB_COMPLETION_INDEX": "one"}, 0, true},
		// Kubernetes first: a Slurm allocation running a pod is unlikely,
		// the reverse impossible.
		{"auto", map[string]string{"JOB_COMPLETION_INDEX": "1", "SLURM_ARRAY_TASK_ID": "3"}, 2, false},
		{"auto", map[string]string{"SLURM_ARRAY_TASK_ID": "0"}, 1, false},
		{"auto", map[string]string{"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "1"}, 4, false},
		{"auto", map[string]string{"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "1"}, 0, true},
		{"auto", map[string]string{"SLURM_ARRAY_TASK_ID": "30", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_STEP": "10"}, 4, false},
		{"auto", map[string]string{"SLURM_ARRAY_TASK_ID": "15", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_STEP": "10"}, 0, true},
		{"auto", map[string]string{"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "4"}, 3, false},
		{"auto", map[string]string{"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "8"}, 0, true},
	}
	for _, tc := range tests {
		got, err := resolvePart(tc.spec, 4, func(k string) string { return tc.env[k] })
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("resolvePart(%q, 4, %v) = %d, %v; want %d, error %v", tc.spec, tc.env, got, err, tc.want, tc.err)
		}
	}
}

// TestPlanFlags checks what a planned conversion refuses: options given
// again beside the plan, and options a plan cannot carry.
func TestPlanFlags(t *testing.T) {
	stories := shareddata.Path(t, "stories260K", "stories260K.safetensors")
	dir := t.TempDir()
	plan := filepath.Join(dir, "plan.json")
	runOK(t, "plan", stories, "-o", plan, "--parts", "2", "--codec", "ecsq", "--bits", "4", "--quiet")
	b, err := os.ReadFile(plan)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"--bits=4"`)) || !bytes.Contains(b, []byte(`"--codec=ecsq"`)) || bytes.Contains(b, []byte("--quiet")) {
		t.Errorf("plan args: %s", b[:min(len(b), 400)])
	}
	for _, args := range [][]string{
		{"convert", stories, "--plan", plan, "--bits", "3", "-o", filepath.Join(dir, "x.nwc")},
		{"convert", stories, "--part", "1/2", "-o", dir},
		{"convert", stories, "--plan", plan, "--part", "3/2", "-o", dir},
		{"plan", stories, "-o", filepath.Join(dir, "p2.json"), "--bits", "4", "--calib", stories},
		{"plan", stories, "-o", filepath.Join(dir, "p2.json"), "--bits", "4", "--parts", "0"},
		{"merge", filepath.Join(dir, "none"), "-o", filepath.Join(dir, "m.nwc")},
	} {
		var out, errb bytes.Buffer
		if code := run(args, &out, &errb); code != 2 {
			t.Errorf("nwc %s: exit %d, want 2\n%s", strings.Join(args, " "), code, errb.String())
		}
	}
	// A plan of another checkpoint is refused.
	other := shareddata.Path(t, "vision", "ppocr_cls.safetensors")
	var out, errb bytes.Buffer
	if code := run([]string{"convert", other, "--plan", plan, "--part", "1/2", "-o", dir}, &out, &errb); code == 0 || !strings.Contains(errb.String(), "other input files") {
		t.Errorf("plan of another input: exit %d\n%s", code, errb.String())
	}
}
