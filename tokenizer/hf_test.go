package tokenizer

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nwcodec/nwc/internal/shareddata"
)

// hfForms are the tokenizer.json forms WriteHF writes, all of which must
// encode alike.
var hfForms = []struct {
	name string
	opt  HFOptions
}{
	{"legacy", HFOptions{}},
	{"metaspace", HFOptions{Metaspace: true}},
	{"array-merges", HFOptions{ArrayMerges: true}},
}

// toHF converts a llama2.c tokenizer with WriteHF and reads it back.
func toHF(t testing.TB, tok *Tokenizer, opt HFOptions) (*Tokenizer, []byte) {
	t.Helper()
	var buf bytes.Buffer
	if err := tok.WriteHF(&buf, opt); err != nil {
		t.Fatal(err)
	}
	hf, err := Read(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !hf.IsHF() || tok.IsHF() {
		t.Fatalf("IsHF: converted %v, original %v", hf.IsHF(), tok.IsHF())
	}
	return hf, buf.Bytes()
}

// textLines returns the non-blank lines of a shared text file, trimmed as
// llama's document reader trims them.
func textLines(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			lines = append(lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// TestHFMatchesLlama2c converts the two shared llama2.c vocabularies to
// tokenizer.json and checks that rank-ordered BPE on the converted file
// gives the llama2.c encoder's ids on every line of the dev text (and
// on the fuzz seeds), in every form WriteHF writes, and that decoding
// gives the text back.
func TestHFMatchesLlama2c(t *testing.T) {
	dir := dataDir(t, "stories260K/tok512.bin", "stories15M/tokenizer.bin", "text/tinystories-dev.txt")
	texts := textLines(t, filepath.Join(dir, "text", "tinystories-dev.txt"))
	seeds := seedTexts(t)
	for _, vocab := range []string{"stories260K/tok512.bin", "stories15M/tokenizer.bin"} {
		tok, err := Load(filepath.Join(dir, vocab))
		if err != nil {
			t.Fatal(err)
		}
		for _, form := range hfForms {
			t.Run(vocab+"/"+form.name, func(t *testing.T) {
				hf, _ := toHF(t, tok, form.opt)
				if hf.VocabSize() != tok.VocabSize() || hf.BOS() != BOS || hf.EOS() != EOS {
					t.Fatalf("vocab %d, BOS %d, EOS %d; want %d, %d, %d", hf.VocabSize(), hf.BOS(), hf.EOS(), tok.VocabSize(), BOS, EOS)
				}
				for i, line := range append(slices.Clone(texts), seeds...) {
					want := tok.Encode(line, true, false)
					if form.opt.Metaspace && strings.HasPrefix(line, " ") {
						// Metaspace prepends "▁" only to text not already
						// starting with one, unlike SentencePiece's dummy
						// prefix, so a leading space is absorbed.
						want = tok.Encode(line[1:], true, false)
					}
					got := hf.Encode(line, true, false)
					if !slices.Equal(got, want) {
						t.Fatalf("line %d %.60q: tokenizer.json gives %v, llama2.c %v", i, line, got, want)
					}
					if sp := hf.EncodeSpecial(line); !slices.Equal(sp, want) {
						t.Fatalf("line %d: EncodeSpecial gives %v, want %v", i, sp, want)
					}
					if i < len(texts) {
						if dec := hf.DecodeAll(got); dec != line {
							t.Fatalf("line %d: DecodeAll gives %.60q, want %.60q", i, dec, line)
						}
					}
				}
			})
		}
	}
}

// TestHFScoreTies shows where the two encoders part: merges whose results
// tie on score. llama2.c merges the leftmost tied pair; a tokenizer.json
// ranks "ab" (the lower id) before "ba" whatever their positions.
func TestHFScoreTies(t *testing.T) {
	tok := tinyTokenizer(t)
	hf, _ := toHF(t, tok, HFOptions{})
	id := func(s string) int {
		i, ok := tok.Lookup(s)
		if !ok {
			t.Fatalf("no token %q", s)
		}
		return i
	}
	sp, x, a, b, ab, ba := id(" "), id("x"), id("a"), id("b"), id("ab"), id("ba")
	tests := []struct {
		text          string
		llama2c, json []int
	}{
		{"xaba", []int{sp, x, ab, a}, []int{sp, x, ab, a}},
		{"xbab", []int{sp, x, ba, b}, []int{sp, x, b, ab}},
	}
	for _, tt := range tests {
		if got := tok.Encode(tt.text, false, false); !slices.Equal(got, tt.llama2c) {
			t.Errorf("llama2.c Encode(%q) = %v, want %v", tt.text, got, tt.llama2c)
		}
		if got := hf.Encode(tt.text, false, false); !slices.Equal(got, tt.json) {
			t.Errorf("tokenizer.json Encode(%q) = %v, want %v", tt.text, got, tt.json)
		}
	}
}

// hfGolden is testdata/hf_golden.json: ids the tokenizers library itself
// (version in "library") gave for texts, per tokenizer file. A case whose
// text is a whole line of the shared tinystories-dev.txt (without its line
// ending) names the line (DevLine, 1-based) instead of holding it, and decodes back to it.
type hfGolden struct {
	Library string `json:"library"`
	Cases   []struct {
		File    string `json:"file"`
		Text    string `json:"text"`
		DevLine int    `json:"dev_line,omitempty"`
		IDs     []int  `json:"ids"`   // encode(text, add_special_tokens=True)
		Plain   []int  `json:"plain"` // encode(text, add_special_tokens=False)
		Text2   string `json:"decoded"`
	} `json:"cases"`
}

// tok512Forms are the two tokenizer.json forms of the shared tok512.bin the
// goldens were recorded on, with the SHA-256 WriteHF gave them then: the
// files are derived from shared data, so they are made here, not committed.
var tok512Forms = []struct {
	file   string
	opt    HFOptions
	sha256 string
}{
	{"tok512.json", HFOptions{}, "628e0e2cbde344823237e02fa8c1f3b8623d2ce4fc8f6302242cabd2a5e1a21e"},
	{"tok512-metaspace.json", HFOptions{Metaspace: true, ArrayMerges: true}, "ad1767f17525b0a4e2e38582ec3131a2280809c18db0b8491e5ac653e8c6892b"},
}

// tok512JSON converts the shared tok512.bin to the named tokenizer.json
// form; it fails (CI) or skips without the shared data.
func tok512JSON(t testing.TB, file string) (*Tokenizer, []byte) {
	t.Helper()
	dir := dataDir(t, "stories260K/tok512.bin")
	tok, err := Load(filepath.Join(dir, "stories260K", "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range tok512Forms {
		if f.file == file {
			return toHF(t, tok, f.opt)
		}
	}
	t.Fatalf("no tok512 form %q", file)
	return nil, nil
}

// TestHFGolden checks Encode, EncodeSpecial and DecodeAll against ids and
// text recorded from the tokenizers library on tokenizer.json files:
// tok512's conversion in both forms (made from the shared tok512.bin) and
// hand-written files exercising added tokens with lstrip and rstrip,
// normalized added tokens, unknown-token fusing, a splitting Metaspace
// with prepend_scheme "always", ignore_merges and a Metaspace decoder.
func TestHFGolden(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "hf_golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g hfGolden
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatal(err)
	}
	if len(g.Cases) == 0 {
		t.Fatal("no golden cases")
	}
	var files []string
	for _, c := range g.Cases {
		if !slices.Contains(files, c.File) {
			files = append(files, c.File)
		}
	}
	for _, file := range files {
		t.Run(file, func(t *testing.T) {
			var tok *Tokenizer
			if strings.HasPrefix(file, "tok512") {
				tok, _ = tok512JSON(t, file)
			} else if tok, err = Load(filepath.Join("testdata", file)); err != nil {
				t.Fatal(err)
			}
			var dev []string
			for _, c := range g.Cases {
				if c.File != file {
					continue
				}
				if c.DevLine > 0 {
					if dev == nil {
						b, err := os.ReadFile(shareddata.Path(t, "text/tinystories-dev.txt"))
						if err != nil {
							t.Fatal(err)
						}
						dev = strings.Split(string(b), "\n")
					}
					if c.DevLine > len(dev) {
						t.Fatalf("dev_line %d: tinystories-dev.txt has %d lines", c.DevLine, len(dev))
					}
					line := strings.TrimSuffix(dev[c.DevLine-1], "\r")
					c.Text, c.Text2 = line, line
				}
				if got := tok.EncodeSpecial(c.Text); !slices.Equal(got, c.IDs) {
					t.Errorf("EncodeSpecial(%q) = %v, tokenizers %s gives %v", c.Text, got, g.Library, c.IDs)
				}
				if got := tok.Encode(c.Text, false, false); !slices.Equal(got, c.Plain) {
					t.Errorf("Encode(%q) = %v, tokenizers %s gives %v", c.Text, got, g.Library, c.Plain)
				}
				if got := tok.DecodeAll(c.IDs); got != c.Text2 {
					t.Errorf("DecodeAll(%v) = %q, tokenizers %s gives %q", c.IDs, got, g.Library, c.Text2)
				}
			}
		})
	}
}

// TestHFFixture checks that WriteHF still makes, byte for byte, the
// tokenizer.json files of tok512.bin the golden ids were recorded on.
func TestHFFixture(t *testing.T) {
	for _, f := range tok512Forms {
		_, got := tok512JSON(t, f.file)
		if sum := fmt.Sprintf("%x", sha256.Sum256(got)); sum != f.sha256 {
			t.Errorf("%s: WriteHF gives SHA-256 %s, the goldens were recorded on %s", f.file, sum, f.sha256)
		}
	}
}

func TestHFErrors(t *testing.T) {
	base := func(edit func(m map[string]any)) string {
		m := map[string]any{
			"model": map[string]any{"type": "BPE", "vocab": map[string]int{"a": 0, "b": 1, "ab": 2}, "merges": []string{"a b"}},
		}
		edit(m)
		data, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	model := func(m map[string]any) map[string]any { return m["model"].(map[string]any) }
	tests := []struct {
		name string
		json string
		want error
	}{
		{"syntax", `{"model": `, ErrFormat},
		{"wordpiece", base(func(m map[string]any) { model(m)["type"] = "WordPiece" }), ErrUnsupported},
		{"dropout", base(func(m map[string]any) { model(m)["dropout"] = 0.1 }), ErrUnsupported},
		{"prefix", base(func(m map[string]any) { model(m)["continuing_subword_prefix"] = "##" }), ErrUnsupported},
		{"merge-unknown", base(func(m map[string]any) { model(m)["merges"] = []string{"a c"} }), ErrFormat},
		{"merge-result", base(func(m map[string]any) { model(m)["merges"] = []string{"b a"} }), ErrFormat},
		{"merge-form", base(func(m map[string]any) { model(m)["merges"] = []string{"a b c"} }), ErrFormat},
		{"merge-array", base(func(m map[string]any) { model(m)["merges"] = [][]string{{"a"}} }), ErrFormat},
		{"id-range", base(func(m map[string]any) { model(m)["vocab"] = map[string]int{"a": 0, "b": 1, "ab": 1 << 40} }), ErrFormat},
		{"id-negative", base(func(m map[string]any) { model(m)["vocab"] = map[string]int{"a": -1, "b": 1, "ab": 2} }), ErrFormat},
		{"id-shared", base(func(m map[string]any) { model(m)["vocab"] = map[string]int{"a": 0, "b": 0, "ab": 2} }), ErrFormat},
		{"unk", base(func(m map[string]any) { model(m)["unk_token"] = "<unk>" }), ErrFormat},
		{"nfkc", base(func(m map[string]any) { m["normalizer"] = map[string]any{"type": "NFKC"} }), ErrUnsupported},
		{"regex", base(func(m map[string]any) {
			m["normalizer"] = map[string]any{"type": "Replace", "pattern": map[string]any{"Regex": " +"}, "content": " "}
		}), ErrUnsupported},
		{"bytelevel", base(func(m map[string]any) { m["pre_tokenizer"] = map[string]any{"type": "ByteLevel"} }), ErrUnsupported},
		{"metaspace-scheme", base(func(m map[string]any) {
			m["pre_tokenizer"] = map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "sometimes"}
		}), ErrFormat},
		{"roberta", base(func(m map[string]any) { m["post_processor"] = map[string]any{"type": "RobertaProcessing"} }), ErrUnsupported},
		{"template-undefined", base(func(m map[string]any) {
			m["post_processor"] = map[string]any{"type": "TemplateProcessing", "single": []any{
				map[string]any{"SpecialToken": map[string]any{"id": "<s>"}}, map[string]any{"Sequence": map[string]any{"id": "A"}}}}
		}), ErrFormat},
		{"template-no-sequence", base(func(m map[string]any) {
			m["post_processor"] = map[string]any{"type": "TemplateProcessing", "single": []any{}}
		}), ErrFormat},
		{"wordpiece-decoder", base(func(m map[string]any) { m["decoder"] = map[string]any{"type": "WordPiece"} }), ErrUnsupported},
		{"single-word", base(func(m map[string]any) {
			m["added_tokens"] = []any{map[string]any{"id": 3, "content": "<x>", "single_word": true}}
		}), ErrUnsupported},
		{"added-clash", base(func(m map[string]any) {
			m["added_tokens"] = []any{map[string]any{"id": 0, "content": "<x>"}}
		}), ErrFormat},
		{"added-empty", base(func(m map[string]any) {
			m["added_tokens"] = []any{map[string]any{"id": 3, "content": ""}}
		}), ErrFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(strings.NewReader(tt.json))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Read() error = %v, want %v", err, tt.want)
			}
		})
	}
	// A tokenizer read from JSON has no llama2.c form.
	tok, err := Read(strings.NewReader(base(func(map[string]any) {})))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tok.WriteTo(&bytes.Buffer{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("WriteTo of a tokenizer.json: %v, want ErrUnsupported", err)
	}
	if err := tok.WriteHF(&bytes.Buffer{}, HFOptions{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("WriteHF of a tokenizer.json: %v, want ErrUnsupported", err)
	}
	if got := tok.Encode("ab", true, true); !slices.Equal(got, []int{2}) {
		t.Errorf("Encode without BOS, EOS or pre-tokenizer = %v, want [2]", got)
	}
}

// FuzzEncodeHF checks on arbitrary text that the converted tok512
// vocabulary never panics, agrees with llama2.c's encoder on valid UTF-8
// (tok512 has no tied merge scores), and decodes back to the text.
func FuzzEncodeHF(f *testing.F) {
	for _, s := range seedTexts(f) {
		f.Add(s)
	}
	dir := dataDir(f, "stories260K/tok512.bin")
	tok, err := Load(filepath.Join(dir, "stories260K", "tok512.bin"))
	if err != nil {
		f.Fatal(err)
	}
	hf, _ := toHF(f, tok, HFOptions{})
	f.Fuzz(func(t *testing.T, s string) {
		got := hf.Encode(s, true, false)
		if !utf8.ValidString(s) || strings.Contains(s, "<s>") || strings.Contains(s, "</s>") || strings.Contains(s, "<unk>") {
			return
		}
		if want := tok.Encode(s, true, false); !slices.Equal(got, want) {
			t.Fatalf("Encode(%q) = %v, llama2.c gives %v", s, got, want)
		}
		if dec := hf.DecodeAll(got); dec != s {
			t.Fatalf("DecodeAll(Encode(%q)) = %q", s, dec)
		}
	})
}
