package conformance

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/nwcodec/nwc/calib"
	"github.com/nwcodec/nwc/codec/lossless"
	"github.com/nwcodec/nwc/codec/mlp"
	"github.com/nwcodec/nwc/codec/neural"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/llama"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/safetensors"
	"github.com/nwcodec/nwc/tokenizer"
)

// hostileSlack is what reading a hostile file may allocate beyond the
// file's own size: scratch, tables and the pooled decoder state.
const hostileSlack = 64 << 20

// A hostileCase is a crafted file, or set of files, that declares sizes,
// counts or lengths its bytes cannot back, and the reader nwc uses for
// that kind of file.
type hostileCase struct {
	name  string
	files func() (map[string][]byte, error) // file name → content
	read  func(dir string) error            // parses and reads everything, as the tools do
	typed func(err error) bool              // whether err is the reader's typed error
}

// hostileFile is the name of a single-file case's file.
const hostileFile = "file"

// hostileEnv names the case a child process of TestHostileSizes reads.
const hostileEnv = "NWC_HOSTILE_CASE"

// hostileDirEnv names the directory where the parent wrote the child's
// files.
const hostileDirEnv = "NWC_HOSTILE_DIR"

func hostileCases() []hostileCase {
	var cases []hostileCase
	cases = append(cases, nwcCases()...)
	cases = append(cases, safetensorsCases()...)
	cases = append(cases, shardedCases()...)
	cases = append(cases, otherCases()...)
	return cases
}

// TestHostileSizes reads files that declare huge shapes, counts, block
// sizes and string lengths, one row per hostile field, and checks that
// each fails with the reader's typed error, with a peak RSS and a heap
// (runtime.MemStats.HeapSys, which counts allocations never written)
// below 64 MiB plus the file's size. The parent writes each case's files;
// a child process (this test binary, selected by hostileEnv) reads them
// from disk as the tools do and reports its peak RSS (VmHWM) and heap, so
// nothing the parent holds or built counts. The bytes the parent
// allocated reading the same files (runtime.MemStats.TotalAlloc, garbage
// included) are logged beside them. Run with -v for the table.
func TestHostileSizes(t *testing.T) {
	if name := os.Getenv(hostileEnv); name != "" {
		hostileChild(t, name)
		return
	}
	if testing.Short() {
		t.Skip("starts a process for each of about ninety crafted files")
	}
	if raceEnabled {
		t.Skip("peak RSS is measured without the race detector, whose shadow memory multiplies it (the plain go test run checks it)")
	}
	for _, c := range hostileCases() {
		dir := t.TempDir()
		files, err := c.files()
		if err != nil {
			t.Fatalf("%s: building the files: %v", c.name, err)
		}
		var size int64
		for n, b := range files {
			if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
				t.Fatal(err)
			}
			size += int64(len(b))
		}
		files = nil
		alloc := allocated(func() { err = c.read(dir) })
		if err == nil {
			t.Errorf("%s: accepted", c.name)
		} else if !c.typed(err) {
			t.Errorf("%s: untyped error %.300v", c.name, err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestHostileSizes$", "-test.count=1")
		cmd.Env = append(os.Environ(), hostileEnv+"="+c.name, hostileDirEnv+"="+dir)
		out, cerr := cmd.CombinedOutput()
		if cerr != nil {
			t.Errorf("%s: child: %v\n%.2000s", c.name, cerr, out)
			continue
		}
		rss, heap, ok := parseChild(out)
		if !ok {
			t.Errorf("%s: the child reported no peak RSS or heap:\n%.2000s", c.name, out)
			continue
		}
		limit := uint64(hostileSlack + size)
		t.Logf("%-42s peak RSS %10d, heap %10d, limit %10d; allocated %10d; file %8d", c.name, rss, heap, limit, alloc, size)
		if rss > limit || heap > limit {
			t.Errorf("%s: peak RSS %d bytes, heap %d, limit %d (64 MiB + the file's %d bytes)", c.name, rss, heap, limit, size)
		}
	}
}

// hostileChild builds and reads one case, in a child process.
func hostileChild(t *testing.T, name string) {
	for _, c := range hostileCases() {
		if c.name != name {
			continue
		}
		if err := c.read(os.Getenv(hostileDirEnv)); err == nil || !c.typed(err) {
			t.Fatalf("%s: want a typed error, got %.300v", name, err)
		}
		// VmHWM is the peak RSS of this process image alone; getrusage's
		// maxrss would include the parent's, inherited across the exec.
		st, err := os.ReadFile("/proc/self/status")
		if err != nil {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(st)) {
			if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
				fmt.Printf("%s %s\n", hwmMarker, strings.TrimSpace(v))
			}
		}
		// An allocation that is never written stays out of the RSS, but
		// not out of the heap the runtime obtained, which never shrinks.
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fmt.Printf("%s %d\n", heapMarker, ms.HeapSys)
		return
	}
	t.Fatalf("no hostile case %q", name)
}

// hwmMarker starts the child's line reporting its peak RSS.
const hwmMarker = "hostile-peak-rss:"

// heapMarker starts the child's line reporting the heap it obtained.
const heapMarker = "hostile-heap-sys:"

// parseChild reads the child's peak RSS ("hwmMarker N kB") and heap
// ("heapMarker N") from its output.
func parseChild(out []byte) (rss, heap uint64, ok bool) {
	var haveRSS, haveHeap bool
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		if v, found := strings.CutPrefix(line, hwmMarker); found {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			rss, haveRSS = kb<<10, err == nil
		}
		if v, found := strings.CutPrefix(line, heapMarker); found {
			n, err := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			heap, haveHeap = n, err == nil
		}
	}
	return rss, heap, haveRSS && haveHeap
}

// allocated returns the bytes the heap handed out while f ran.
func allocated(f func()) uint64 {
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// readNWC opens dir's file, verifies it deeply and streams every tensor,
// which is everything nwc info, nwc decode and nwc-verify --deep do.
func readNWC(dir string) error {
	r, err := reader.Open(filepath.Join(dir, hostileFile), nil)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := r.Verify(context.Background(), &reader.VerifyOptions{Deep: true}); err != nil {
		return err
	}
	for _, t := range r.Tensors() {
		rc, err := t.Open(context.Background(), t.DType())
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			return err
		}
	}
	return fmt.Errorf("every tensor decoded")
}

// goldenIndex edits the index of a file of testdata/golden.
func goldenIndex(name string, edit func(*format.Index)) func() ([]byte, error) {
	return func() ([]byte, error) {
		b, err := os.ReadFile(filepath.Join("testdata", "golden", name))
		if err != nil {
			return nil, err
		}
		r, err := reader.NewReader(bytes.NewReader(b), int64(len(b)), nil)
		if err != nil {
			return nil, err
		}
		x := r.Index()
		edit(x)
		ix := x.Marshal()
		return rebuildIndex(b, func([]byte) []byte { return ix })
	}
}

// widenLast adds rows to the named 2-D tensor until its last group holds
// nearly the 2^28 elements a group may, over the same payload.
func widenLast(name string) func(*format.Index) {
	return func(x *format.Index) {
		for i := range x.Tensors {
			t := &x.Tensors[i]
			if t.Name != name {
				continue
			}
			cols := t.View[1]
			last := &t.Groups[len(t.Groups)-1]
			rows := t.GroupStart(len(t.Groups)-1)/cols + (1<<28)/cols
			t.View[0] = rows
			t.Shape = []uint64{rows, cols}
			if t.View != [2]uint64{t.Shape[0], t.Shape[1]} {
				t.Shape = []uint64{cols, rows}
			}
			last.End = rows * cols
		}
	}
}

// readNWCFloat32 opens dir's file and decodes every tensor whole to
// float32, as nwc eval and the llama loader do.
func readNWCFloat32(dir string) error {
	r, err := reader.Open(filepath.Join(dir, hostileFile), nil)
	if err != nil {
		return err
	}
	defer r.Close()
	for _, t := range r.Tensors() {
		if _, err := t.Float32(); err != nil {
			return err
		}
	}
	return fmt.Errorf("every tensor decoded")
}

func nwcTyped(err error) bool { return format.Class(err) != "" }

// single makes the files of a one-file case.
func single(build func() ([]byte, error)) func() (map[string][]byte, error) {
	return func() (map[string][]byte, error) {
		b, err := build()
		return map[string][]byte{hostileFile: b}, err
	}
}

// bytesOf makes the files of a one-file case from fixed bytes.
func bytesOf(b func() []byte) func() (map[string][]byte, error) {
	return single(func() ([]byte, error) { return b(), nil })
}

func nwcCase(name string, build func() ([]byte, error)) hostileCase {
	return hostileCase{"nwc/" + name, single(build), readNWC, nwcTyped}
}

// nwcFloat32Case is like nwcCase but reads every tensor whole.
func nwcFloat32Case(name string, build func() ([]byte, error)) hostileCase {
	return hostileCase{"nwc-float32/" + name, single(build), readNWCFloat32, nwcTyped}
}

// nwcCases are the invalid files of the conformance suite, several of
// which declare huge counts and lengths, and index entries whose shapes
// and sections declare far more than the file holds.
func nwcCases() []hostileCase {
	var cs []hostileCase
	for _, inv := range Invalids() {
		cs = append(cs, nwcCase(strings.TrimSuffix(inv.Name, ".nwc"), inv.Build))
	}
	huge := func(i int, rows, cols uint64) func(*format.Index) {
		return func(x *format.Index) {
			x.Tensors[i].Shape = []uint64{rows, cols}
			x.Tensors[i].View = [2]uint64{rows, cols}
			x.Tensors[i].Groups = x.Tensors[i].Groups[:1]
			x.Tensors[i].Groups[0].End = rows * cols
		}
	}
	strHeader := func(key string, n uint32) func([]byte) []byte {
		return func([]byte) []byte {
			w := format.NewMsgWriter()
			w.MapLen(1)
			w.String(key)
			w.MapLen(1)
			w.String("k")
			w.Raw([]byte{0xdb, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}) // str 32
			return append(w.Bytes(), make([]byte, 16)...)
		}
	}
	cs = append(cs,
		nwcCase("raw_shape_16GiB_group", index(huge(0, 1<<16, 1<<16))),
		nwcCase("lossless_shape_32GiB_group", index(huge(1, 1<<17, 1<<17))),
		nwcCase("lossless_shape_63GiB_group", index(huge(1, 1<<17, 63<<17))),
		nwcCase("nwc_shape_16GiB_group", nwcIndex(huge(0, 1<<16, 1<<16))),
		// The largest group FORMAT.md allows, 2^28 elements, over the
		// original payloads.
		nwcCase("raw_group_2^28_elements", index(huge(0, 1<<14, 1<<14))),
		nwcCase("lossless_group_2^28_elements", index(huge(1, 1<<14, 1<<14))),
		nwcCase("nwc_group_2^28_elements", nwcIndex(huge(0, 1<<14, 1<<14))),
		nwcCase("rtn_last_group_2^28_elements", goldenIndex("lossy_scalar.nwc", widenLast("rtn3_g32"))),
		nwcCase("ecsq_last_group_2^28_elements", goldenIndex("lossy_scalar.nwc", widenLast("ecsq"))),
		nwcCase("tcq_last_group_2^28_elements", goldenIndex("lossy_tcq.nwc", widenLast("tcq_levels"))),
		nwcCase("nwc_last_group_2^28_elements", goldenIndex("nwc_blob.nwc", widenLast("nwc_learned"))),
		nwcFloat32Case("lossless_group_2^28_elements", index(huge(1, 1<<14, 1<<14))),
		nwcFloat32Case("ecsq_last_group_2^28_elements", goldenIndex("lossy_scalar.nwc", widenLast("ecsq"))),
		nwcFloat32Case("nwc_last_group_2^28_elements", goldenIndex("nwc_blob.nwc", widenLast("nwc_learned"))),
		nwcCase("group_section_2^40", index(func(x *format.Index) { x.Tensors[1].Groups[0].Length = 1 << 40 })),
		nwcCase("blob_section_2^40", nwcIndex(func(x *format.Index) { x.Blobs[0].Section.Length = 1 << 40 })),
		nwcCase("metadata_string_2^31", rawIndex(strHeader("metadata", 1<<31-1))),
		nwcCase("metadata_map_2^32", rawIndex(func([]byte) []byte {
			w := format.NewMsgWriter()
			w.MapLen(1)
			w.String("metadata")
			w.Raw([]byte{0xdf, 0xff, 0xff, 0xff, 0xff}) // map 32
			return append(w.Bytes(), make([]byte, 16)...)
		})),
		nwcCase("shape_array_2^32", rawIndex(func([]byte) []byte {
			w := format.NewMsgWriter()
			w.MapLen(1)
			w.String("tensors")
			w.ArrayLen(1)
			w.MapLen(6)
			w.String("name")
			w.String("a")
			w.String("shape")
			w.Raw([]byte{0xdd, 0xff, 0xff, 0xff, 0xff}) // array 32
			return append(w.Bytes(), make([]byte, 16)...)
		})),
		nwcCase("groups_array_2^32", rawIndex(func([]byte) []byte {
			w := format.NewMsgWriter()
			w.MapLen(1)
			w.String("tensors")
			w.ArrayLen(1)
			w.MapLen(6)
			w.String("groups")
			w.Raw([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
			return append(w.Bytes(), make([]byte, 16)...)
		})),
		nwcCase("params_bin_2^32", rawIndex(func([]byte) []byte {
			w := format.NewMsgWriter()
			w.MapLen(1)
			w.String("tensors")
			w.ArrayLen(1)
			w.MapLen(6)
			w.String("params")
			w.Raw([]byte{0xc6, 0xff, 0xff, 0xff, 0xff}) // bin 32
			return append(w.Bytes(), make([]byte, 16)...)
		})),
	)
	return cs
}

func stTyped(err error) bool {
	return errors.Is(err, safetensors.ErrFormat) || errors.Is(err, safetensors.ErrUnsupported) || errors.Is(err, safetensors.ErrTooLarge)
}

// stFile returns a safetensors file with the given header and data.
func stFile(header string, data int) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	return append(append(b, header...), make([]byte, data)...)
}

// readST opens dir's file and reads every tensor, as nwc convert does.
func readST(dir string) error {
	f, err := safetensors.Open(filepath.Join(dir, hostileFile))
	if err != nil {
		return err
	}
	defer f.Close()
	for _, ti := range f.Tensors() {
		if _, err := f.ReadTensor(ti.Name); err != nil {
			return err
		}
	}
	return fmt.Errorf("every tensor read")
}

func safetensorsCases() []hostileCase {
	st := func(name string, file func() []byte) hostileCase {
		return hostileCase{"safetensors/" + name, bytesOf(file), readST, stTyped}
	}
	prefix := func(n uint64, rest string) []byte {
		return append(binary.LittleEndian.AppendUint64(nil, n), rest...)
	}
	tensor := func(shape string, end uint64) string {
		return fmt.Sprintf(`{"t":{"dtype":"F32","shape":%s,"data_offsets":[0,%d]}}`, shape, end)
	}
	rank := "[" + strings.Repeat("1,", 9999) + "1]"
	return []hostileCase{
		st("header_len_2^62", func() []byte { return prefix(1<<62, "{}") }),
		st("header_len_past_file", func() []byte { return prefix(1<<26, "{}") }),
		st("header_len_2^64-1", func() []byte { return prefix(math.MaxUint64, "{}") }),
		st("shape_2^40x2^40", func() []byte { return stFile(tensor("[1099511627776,1099511627776]", 16), 16) }),
		st("shape_16GiB_offsets_16GiB", func() []byte { return stFile(tensor("[65536,65536]", 1<<34), 16) }),
		st("shape_16GiB_offsets_small", func() []byte { return stFile(tensor("[65536,65536]", 16), 16) }),
		st("offsets_2^63", func() []byte {
			return stFile(`{"t":{"dtype":"F32","shape":[4],"data_offsets":[9223372036854775800,9223372036854775807]}}`, 16)
		}),
		st("rank_10000", func() []byte { return stFile(tensor(rank, 4), 4) }),
		st("name_1MiB", func() []byte {
			return stFile(fmt.Sprintf(`{%q:{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}`, strings.Repeat("n", 1<<20)), 4)
		}),
		st("name_32MiB", func() []byte {
			return stFile(fmt.Sprintf(`{%q:{"dtype":"F32","shape":[1],"data_offsets":[0,8]}}`, strings.Repeat("n", 32<<20)), 4)
		}),
		st("metadata_value_32MiB", func() []byte {
			return stFile(`{"__metadata__":{"k":"`+strings.Repeat("v", 32<<20)+`"}}`, 0)
		}),
		st("metadata_value_1MiB_then_huge_shape", func() []byte {
			return stFile(`{"__metadata__":{"k":"`+strings.Repeat("v", 1<<20)+`"},`+tensor("[65536,65536]", 16)[1:], 16)
		}),
	}
}

// shardedCases write sharded checkpoints whose index or shards are
// hostile and open them as nwc convert does.
func shardedCases() []hostileCase {
	var cs []hostileCase
	add := func(name string, files func() map[string][]byte, typed func(error) bool) {
		cs = append(cs, hostileCase{"sharded/" + name, func() (map[string][]byte, error) { return files(), nil }, func(dir string) error {
			s, err := safetensors.OpenIndex(filepath.Join(dir, "model.safetensors.index.json"))
			if err != nil {
				return err
			}
			s.Close()
			return fmt.Errorf("opened")
		}, typed})
	}
	index := func(wm map[string]string) []byte {
		b, _ := json.Marshal(map[string]any{"metadata": map[string]any{}, "weight_map": wm})
		return b
	}
	add("shard_header_len_2^62", func() map[string][]byte {
		return map[string][]byte{
			"model.safetensors.index.json": index(map[string]string{"t": "a.safetensors"}),
			"a.safetensors":                append(binary.LittleEndian.AppendUint64(nil, 1<<62), "{}"...),
		}
	}, stTyped)
	add("shard_shape_2^40x2^40", func() map[string][]byte {
		return map[string][]byte{
			"model.safetensors.index.json": index(map[string]string{"t": "a.safetensors"}),
			"a.safetensors":                stFile(`{"t":{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,16]}}`, 16),
		}
	}, stTyped)
	add("weight_map_100000_missing_shards", func() map[string][]byte {
		many := make(map[string]string)
		for i := range 100000 {
			many[fmt.Sprintf("t%d", i)] = fmt.Sprintf("model-%05d-of-99999.safetensors", i)
		}
		return map[string][]byte{"model.safetensors.index.json": index(many)}
	}, func(err error) bool { return errors.Is(err, fs.ErrNotExist) })
	add("shard_shape_16GiB_offsets_small", func() map[string][]byte {
		return map[string][]byte{
			"model.safetensors.index.json": []byte(`{"weight_map":{"t":"a.safetensors"},"metadata":{"total_size":1e300}}`),
			"a.safetensors":                stFile(`{"t":{"dtype":"F32","shape":[65536,65536],"data_offsets":[0,16]}}`, 16),
		}
	}, stTyped)
	return cs
}

// otherCases cover the remaining files nwc reads: Hessian files, llama2.c
// tokenizers and checkpoints, codec networks and .nwcc files, and the
// lossless codec's streams.
func otherCases() []hostileCase {
	var cs []hostileCase
	// The file is built in full here, when the list is made: these are
	// small unless they say so.
	add := func(name string, b []byte, read func(path string) error, typed func(error) bool) {
		cs = append(cs, hostileCase{name, bytesOf(func() []byte { return b }), func(dir string) error {
			return read(filepath.Join(dir, hostileFile))
		}, typed})
	}
	// inMemory reads the whole file first, as the tools do with codec
	// blobs, .nwcc files and lossless payloads.
	inMemory := func(parse func([]byte) error) func(string) error {
		return func(path string) error {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return parse(b)
		}
	}
	is := func(targets ...error) func(error) bool {
		return func(err error) bool {
			for _, t := range targets {
				if errors.Is(err, t) {
					return true
				}
			}
			return false
		}
	}

	readCalib := func(path string) error {
		_, err := calib.ReadHessians(path)
		return err
	}
	add("calib/hessian_shape_2^20x2^20", stFile(`{"__metadata__":{"tokens":"1"},"h.w":{"dtype":"F64","shape":[1048576,1048576],"data_offsets":[0,8]}}`, 8), readCalib, is(calib.ErrFormat))
	add("calib/tokens_2^63", stFile(`{"__metadata__":{"tokens":"9223372036854775807"},"h.w":{"dtype":"F64","shape":[1,1],"data_offsets":[0,8]}}`, 8), readCalib, is(calib.ErrFormat))
	add("calib/header_len_2^62", append(binary.LittleEndian.AppendUint64(nil, 1<<62), "{}"...), readCalib, is(calib.ErrFormat))

	readTok := func(path string) error {
		_, err := tokenizer.Load(path)
		return err
	}
	le32 := func(vs ...uint32) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint32(b, v)
		}
		return b
	}
	add("tokenizer/max_token_len_2^31", le32(1<<31-1, 0, 4), readTok, is(tokenizer.ErrFormat))
	add("tokenizer/token_len_65536_truncated", le32(1<<16, 0, 1<<16), readTok, is(tokenizer.ErrFormat))
	add("tokenizer/token_len_2^32-1", le32(1<<16, 0, math.MaxUint32), readTok, is(tokenizer.ErrFormat))

	readBin := func(path string) error {
		_, err := llama.LoadBin(path)
		return err
	}
	add("llama-bin/dims_2^31-1", le32(1<<31-1, 1<<31-1, 1<<31-1, 1<<31-1, 1<<31-1, 1<<31-1, 1<<31-1), readBin, is(llama.ErrFormat))
	// An 8 B-shaped header with no weights: valid until the data runs out.
	add("llama-bin/8B_header_no_weights", le32(4096, 14336, 32, 32, 8, 128256, 8192), readBin, is(llama.ErrFormat))
	add("llama-bin/70B_header_1MiB_weights", append(le32(8192, 28672, 80, 64, 8, 128256, 8192), make([]byte, 1<<20)...), readBin, is(llama.ErrFormat))

	readNet := inMemory(func(b []byte) error {
		_, _, err := mlp.Parse(b)
		return err
	})
	add("mlp/layer_65535x65535", []byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0, 0, 0}, readNet, is(mlp.ErrNet))
	add("mlp/255_layers", append([]byte{1, 255}, make([]byte, 5*255+2)...), readNet, is(mlp.ErrNet))
	add("mlp/levels_65535", []byte{1, 1, 16, 0, 16, 0, 0, 0xff, 0xff}, readNet, is(mlp.ErrNet))

	readCodec := inMemory(func(b []byte) error {
		_, err := neural.ParseCodec(b)
		return err
	})
	nwcc := func(key string, raw ...byte) []byte {
		w := format.NewMsgWriter()
		w.MapLen(8)
		w.String(key)
		w.Raw(raw)
		return append(w.Bytes(), make([]byte, 16)...)
	}
	codecErr := is(format.ErrFormat, format.ErrLimit)
	add("nwcc/encoder_bin_2^32-1", nwcc("encoder", 0xc6, 0xff, 0xff, 0xff, 0xff), readCodec, codecErr)
	add("nwcc/info_str_2^32-1", nwcc("info", 0xdb, 0xff, 0xff, 0xff, 0xff), readCodec, codecErr)
	add("nwcc/config_map_2^32-1", nwcc("config", 0xdf, 0xff, 0xff, 0xff, 0xff), readCodec, codecErr)
	add("nwcc/map_2^32-1_keys", []byte{0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'x'}, readCodec, codecErr)

	decomp := func(dtype string, n int) func(string) error {
		return inMemory(func(b []byte) error {
			_, err := lossless.Decompress(nil, b, dtype, n)
			return err
		})
	}
	lossErr := is(lossless.ErrCorrupt, lossless.ErrLength)
	hdr := func(layout, streams byte, count uint64, rest ...byte) []byte {
		return append(binary.AppendUvarint([]byte{lossless.Version, layout, streams}, count), rest...)
	}
	add("lossless/count_2^40_constant_block", hdr(2, 4, 1<<40, 4, 1, 7), decomp("F32", 1<<40), lossErr)
	add("lossless/count_2^61_f64", hdr(3, 8, 1<<61, 4, 1, 7), decomp("F64", 1<<61), lossErr)
	add("lossless/count_2^60_caller_2^60", hdr(0, 1, 1<<60, 0, 0xff, 0xff, 0xff, 0xff, 0x0f), decomp("U8", 1<<60), lossErr)
	// A count that needs 2730 blocks in 8 Ki bytes of descriptors: every
	// descriptor is valid, the payloads are missing.
	many := hdr(0, 1, 2730*128<<10)
	for range 2730 {
		many = append(many, 4, 1)
	}
	add("lossless/2730_blocks_no_payloads", many, decomp("U8", 2730*128<<10), lossErr)
	return cs
}
