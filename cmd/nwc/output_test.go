package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/nwcodec/nwc/internal/shareddata"
	"github.com/nwcodec/nwc/safetensors"
)

// writeModel writes a small checkpoint with one matrix large enough to be
// coded lossily and one vector.
func writeModel(t *testing.T, path string, names ...string) {
	t.Helper()
	if len(names) == 0 {
		names = []string{"layer.w", "layer.b"}
	}
	h := &safetensors.Header{Tensors: []safetensors.TensorInfo{
		{Name: names[0], DType: safetensors.F32, Shape: []int64{64, 32}},
		{Name: names[1], DType: safetensors.F32, Shape: []int64{64}},
	}}
	if err := safetensors.WriteFile(path, h, func(n string) ([]byte, error) {
		numel := 64
		if n == names[0] {
			numel = 64 * 32
		}
		b := make([]byte, 4*numel)
		for i := range numel {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(float32(math.Sin(float64(i)*0.37))*0.02))
		}
		return b, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// snapshot maps every path under dir to its kind and, for regular files,
// its SHA-256, so that a test can say exactly what a command changed.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := sha256.Sum256(b)
			m[rel] = "file " + hex.EncodeToString(s[:8])
		case fi.Mode()&fs.ModeSymlink != 0:
			dest, _ := os.Readlink(p)
			m[rel] = "symlink → " + dest
		default:
			m[rel] = fi.Mode().Type().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// diff describes how after differs from before.
func diff(before, after map[string]string) string {
	var out []string
	for k, v := range after {
		switch b, ok := before[k]; {
		case !ok:
			out = append(out, "+"+k)
		case b != v:
			out = append(out, "~"+k)
		}
	}
	for k := range before {
		if _, ok := after[k]; !ok {
			out = append(out, "-"+k)
		}
	}
	if len(out) == 0 {
		return "unchanged"
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// TestOutputSafety runs the CLI on the mistakes users make with inputs,
// outputs and flags, and checks the exit status, the message and exactly
// what changed on disk: inputs are never modified, no temporary file is
// left, nothing but a regular file at the output path is ever replaced.
func TestOutputSafety(t *testing.T) {
	root := t.TempDir()
	mk := func(t *testing.T) string {
		dir := filepath.Join(root, strings.ReplaceAll(t.Name(), "/", "_"))
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		writeModel(t, filepath.Join(dir, "m.safetensors"))
		if code := run([]string{"convert", filepath.Join(dir, "m.safetensors"), "-o", filepath.Join(dir, "m.nwc")}, new(bytes.Buffer), new(bytes.Buffer)); code != 0 {
			t.Fatal("setup convert failed")
		}
		return dir
	}
	data := shareddata.Dir(t)
	type tc struct {
		name  string
		setup func(t *testing.T, dir string)
		args  []string // "D/" is replaced by the scenario's directory
		code  int
		msg   string                         // substring of stderr
		disk  string                         // diff of the directory, as diff prints it
		check func(t *testing.T, dir string) // more checks on disk
		root  bool                           // needs root (mknod)
	}
	symlink := func(old, new string) func(*testing.T, string) {
		return func(t *testing.T, dir string) {
			if err := os.Symlink(old, filepath.Join(dir, new)); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []tc{
		{name: "convert -o the input", args: []string{"convert", "D/m.safetensors", "-o", "D/m.safetensors", "--codec", "nwc", "--bits", "4"},
			code: 2, msg: "refusing to overwrite an input", disk: "unchanged"},
		{name: "convert -o the input spelled differently", args: []string{"convert", "D/m.safetensors", "-o", "D/./m.safetensors", "--force"},
			code: 2, msg: "same file as input", disk: "unchanged"},
		{name: "convert -o a symlink to the input", setup: symlink("m.safetensors", "link.nwc"), args: []string{"convert", "D/m.safetensors", "-o", "D/link.nwc", "--force"},
			code: 2, msg: "same file as input", disk: "unchanged"},
		{name: "convert -o a hard link to the input", setup: func(t *testing.T, dir string) {
			if err := os.Link(filepath.Join(dir, "m.safetensors"), filepath.Join(dir, "hard.nwc")); err != nil {
				t.Fatal(err)
			}
		}, args: []string{"convert", "D/m.safetensors", "-o", "D/hard.nwc", "--force"}, code: 2, msg: "same file as input", disk: "unchanged"},
		{name: "convert sharded -o a shard", setup: func(t *testing.T, dir string) {
			writeModel(t, filepath.Join(dir, "s-1.safetensors"), "a.w", "a.b")
			writeModel(t, filepath.Join(dir, "s-2.safetensors"), "b.w", "b.b")
			idx := `{"metadata":{},"weight_map":{"a.w":"s-1.safetensors","a.b":"s-1.safetensors","b.w":"s-2.safetensors","b.b":"s-2.safetensors"}}`
			if err := os.WriteFile(filepath.Join(dir, "model.safetensors.index.json"), []byte(idx), 0o644); err != nil {
				t.Fatal(err)
			}
		}, args: []string{"convert", "D/model.safetensors.index.json", "-o", "D/s-2.safetensors", "--force"}, code: 2, msg: "s-2.safetensors is one of the input files", disk: "unchanged"},
		{name: "decode -o the input", args: []string{"decode", "D/m.nwc", "-o", "D/m.nwc", "--force"},
			code: 2, msg: "refusing to overwrite an input", disk: "unchanged"},
		{name: "convert -o an existing file", setup: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "old.nwc"), []byte("keep me"), 0o644)
		}, args: []string{"convert", "D/m.safetensors", "-o", "D/old.nwc"}, code: 2, msg: "old.nwc exists; add --force", disk: "unchanged"},
		{name: "convert -o an existing file --force", setup: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "old.nwc"), []byte("replace me"), 0o644)
		}, args: []string{"convert", "D/m.safetensors", "-o", "D/old.nwc", "--force"}, code: 0, disk: "~old.nwc"},
		{name: "convert -o a symlink --force writes its target", setup: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "real.nwc"), []byte("old"), 0o644)
			symlink("real.nwc", "link.nwc")(t, dir)
		}, args: []string{"convert", "D/m.safetensors", "-o", "D/link.nwc", "--force"}, code: 0, disk: "~real.nwc",
			check: func(t *testing.T, dir string) {
				runOK(t, "info", filepath.Join(dir, "real.nwc"))
			}},
		{name: "convert -o a dangling symlink creates its target", setup: symlink("new.nwc", "link.nwc"),
			args: []string{"convert", "D/m.safetensors", "-o", "D/link.nwc"}, code: 0, disk: "+new.nwc"},
		{name: "convert -o a directory", setup: func(t *testing.T, dir string) { os.Mkdir(filepath.Join(dir, "out"), 0o755) },
			args: []string{"convert", "D/m.safetensors", "-o", "D/out", "--force"}, code: 2, msg: "out: a directory, not a regular file", disk: "unchanged"},
		{name: "convert -o a fifo", setup: func(t *testing.T, dir string) {
			if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, args: []string{"convert", "D/m.safetensors", "-o", "D/fifo", "--force"}, code: 2, msg: "fifo: a fifo, not a regular file", disk: "unchanged"},
		{name: "decode -o a device (a copy of /dev/full)", root: true, setup: func(t *testing.T, dir string) {
			if err := syscall.Mknod(filepath.Join(dir, "full"), syscall.S_IFCHR|0o666, 1<<8|7); err != nil {
				t.Fatal(err)
			}
		}, args: []string{"decode", "D/m.nwc", "-o", "D/full", "--force"}, code: 2, msg: "full: a device, not a regular file", disk: "unchanged"},
		{name: "convert -o into a missing directory", args: []string{"convert", "D/m.safetensors", "-o", "D/no/q.nwc"}, code: 2, msg: "/no/q.nwc: no such file or directory", disk: "unchanged"},
		{name: "convert -o -", args: []string{"convert", "D/m.safetensors", "-o", "-"}, code: 2, msg: "cannot be written to standard output", disk: "unchanged"},
		{name: "decode -o -", args: []string{"decode", "D/m.nwc", "-o", "-"}, code: 2, msg: "cannot be written to standard output", disk: "unchanged"},
		{name: "calibrate -o its text", setup: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "text.txt"), []byte("Once upon a time\n"), 0o644)
		}, args: []string{"calibrate", "--model", "D/m.safetensors", "--tokenizer", data + "/stories260K/tok512.bin", "--text", "D/text.txt", "-o", "D/text.txt"},
			code: 2, msg: "text.txt is one of the input files", disk: "unchanged"},
		{name: "train -o its input", args: []string{"train", "D/m.safetensors", "-o", "D/m.safetensors"}, code: 2, msg: "m.safetensors is one of the input files", disk: "unchanged"},
		{name: "convert --bits without --codec means nwc", args: []string{"convert", "D/m.safetensors", "-o", "D/q.nwc", "--bits", "4", "--json"}, code: 0, disk: "+q.nwc",
			check: func(t *testing.T, dir string) {
				var info fileInfo
				json.Unmarshal([]byte(runOK(t, "info", "--json", filepath.Join(dir, "q.nwc"))), &info)
				if len(info.Tensors) != 2 || info.Tensors[0].Codec != "nwc" {
					t.Errorf("tensors %+v, want layer.w coded with nwc", info.Tensors)
				}
			}},
		{name: "convert --codec raw --bits", args: []string{"convert", "D/m.safetensors", "-o", "D/q.nwc", "--codec", "raw", "--bits", "4"}, code: 2, msg: "--bits has no effect with --codec raw", disk: "unchanged"},
		{name: "convert --codec lossless --bits", args: []string{"convert", "D/m.safetensors", "-o", "D/q.nwc", "--codec", "lossless", "--bits", "4"}, code: 2, msg: "--bits has no effect with --codec lossless", disk: "unchanged"},
		{name: "convert --codec q4k --bits 3", args: []string{"convert", "D/m.safetensors", "-o", "D/q.nwc", "--codec", "q4k", "--bits", "3"}, code: 2, msg: "q4k has a fixed rate", disk: "unchanged"},
		{name: "convert --codec ecsq --no-learned", args: []string{"convert", "D/m.safetensors", "-o", "D/q.nwc", "--codec", "ecsq", "--bits", "4", "--no-learned"}, code: 2, msg: "--no-learned applies to --codec nwc only, not ecsq", disk: "unchanged"},
		{name: "convert --bits 0", args: []string{"convert", "D/m.safetensors", "-o", "D/q.nwc", "--bits", "0"}, code: 2, msg: "--bits 0: want a finite number above 0", disk: "unchanged"},
		{name: "convert --bits NaN", args: []string{"convert", "D/m.safetensors", "-o", "D/q.nwc", "--bits", "NaN"}, code: 2, msg: "--bits NaN: want a finite number above 0", disk: "unchanged"},
		{name: "convert --step -1", args: []string{"convert", "D/m.safetensors", "-o", "D/q.nwc", "--step", "-1"}, code: 2, msg: "--step -1: want a finite number above 0", disk: "unchanged"},
		{name: "convert --tensor-bits matching nothing", args: []string{"convert", "D/m.safetensors", "-o", "D/q.nwc", "--bits", "4", "--tensor-bits", "attn=3"}, code: 2, msg: "matches none of the 2 tensors (for example layer.w, layer.b)", disk: "unchanged"},
		{name: "convert --tensor-bits Inf", args: []string{"convert", "D/m.safetensors", "-o", "D/q.nwc", "--tensor-bits", "layer=Inf"}, code: 2, msg: "want a finite number of bits above 0", disk: "unchanged"},
		{name: "convert --rtn-bits with nwc", args: []string{"convert", "D/m.safetensors", "-o", "D/q.nwc", "--codec", "nwc", "--rtn-bits", "4"}, code: 2, msg: "--rtn-bits applies to --codec rtn only", disk: "unchanged"},
		{name: "train --lr 0", args: []string{"train", "D/m.safetensors", "-o", "D/c.nwcc", "--lr", "0"}, code: 2, msg: "--lr 0: want a finite number above 0", disk: "unchanged"},
		{name: "bench rd --bits NaN", args: []string{"bench", "rd", "--bits", "4,NaN", "D/m.safetensors"}, code: 2, msg: "--bits NaN: want finite numbers above 0", disk: "unchanged"},
		{name: "convert a GGUF file", args: []string{"convert", data + "/stories260K/tinyllamas-stories-260k-f32.gguf", "-o", "D/q.nwc"}, code: 1, msg: "is a GGUF file (llama.cpp); nwc convert reads safetensors checkpoints", disk: "unchanged"},
		{name: "convert a llama2.c .bin", args: []string{"convert", data + "/stories260K/stories260K.bin", "-o", "D/q.nwc"}, code: 1, msg: "is a llama2.c checkpoint; nwc convert reads safetensors", disk: "unchanged"},
		{name: "convert a PyTorch zip", setup: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "pytorch_model.bin"), []byte("PK\x03\x04archive/data.pkl......"), 0o644)
		}, args: []string{"convert", "D/pytorch_model.bin", "-o", "D/q.nwc"}, code: 1, msg: "is a zip archive (a PyTorch checkpoint saves as one); nwc convert reads", disk: "unchanged"},
		{name: "convert a PNG", setup: func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, "x.png"), []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), 0o644)
		}, args: []string{"convert", "D/x.png", "-o", "D/q.nwc"}, code: 1, msg: "is a PNG image; nwc convert reads", disk: "unchanged"},
		{name: "convert a .nwc", args: []string{"convert", "D/m.nwc", "-o", "D/q.nwc"}, code: 1, msg: "m.nwc is a .nwc file; it is already compressed", disk: "unchanged"},
		{name: "decode a safetensors file", args: []string{"decode", "D/m.safetensors", "-o", "D/q.safetensors"}, code: 1, msg: "m.safetensors is a safetensors file; nwc decode reads .nwc files", disk: "unchanged"},
		{name: "info a GGUF file", args: []string{"info", data + "/stories260K/tinyllamas-stories-260k-f32.gguf"}, code: 1, msg: "is a GGUF file (llama.cpp); nwc info reads .nwc files", disk: "unchanged"},
	}
	var table []string
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.root && os.Geteuid() != 0 {
				t.Skip("making a device node needs root")
			}
			dir := mk(t)
			if c.setup != nil {
				c.setup(t, dir)
			}
			before := snapshot(t, dir)
			args := make([]string, len(c.args))
			for i, a := range c.args {
				args[i] = strings.ReplaceAll(a, "D/", dir+"/")
			}
			var stdout, stderr bytes.Buffer
			code := run(args, &stdout, &stderr)
			msg := strings.TrimSpace(stderr.String())
			if code != c.code || !strings.Contains(msg, c.msg) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, msg, c.code, c.msg)
			}
			after := snapshot(t, dir)
			if d := diff(before, after); d != c.disk {
				t.Errorf("disk: %s, want %s", d, c.disk)
			}
			for p := range after {
				if strings.Contains(p, ".tmp-") || p == "-" {
					t.Errorf("left %s behind", p)
				}
			}
			if c.check != nil {
				c.check(t, dir)
			}
			if c.msg == "" {
				msg = "(none; stdout: " + strings.TrimSpace(stdout.String()) + ")"
			}
			msg = strings.ReplaceAll(strings.ReplaceAll(msg, dir+"/", ""), data+"/", "")
			table = append(table, fmt.Sprintf("| %s | %d | %s | %s |", c.name, code, msg, diff(before, after)))
		})
	}
	t.Log("\n| scenario | exit | message | disk |\n|---|---|---|---|\n" + strings.Join(table, "\n"))
}
