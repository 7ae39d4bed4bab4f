package tokenizer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReadFixture(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "tiny.tok"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tok, err := Read(f)
	if err != nil {
		t.Fatal(err)
	}
	want := tinyTokenizer(t)
	if tok.VocabSize() != want.VocabSize() || tok.MaxTokenLen() != 6 {
		t.Fatalf("VocabSize() = %d, MaxTokenLen() = %d; want %d, 6", tok.VocabSize(), tok.MaxTokenLen(), want.VocabSize())
	}
	for id := range want.VocabSize() {
		if tok.Piece(id) != want.Piece(id) || tok.Score(id) != want.Score(id) {
			t.Errorf("token %d = %q %v, want %q %v", id, tok.Piece(id), tok.Score(id), want.Piece(id), want.Score(id))
		}
	}
	if tok.Piece(-1) != "" || tok.Piece(tok.VocabSize()) != "" || tok.Score(1<<20) != 0 {
		t.Error("out-of-range Piece or Score is not empty")
	}
}

func TestReadErrors(t *testing.T) {
	rec := func(score float32, length int32, text string) []byte {
		var b bytes.Buffer
		binary.Write(&b, binary.LittleEndian, score)
		binary.Write(&b, binary.LittleEndian, length)
		b.WriteString(text)
		return b.Bytes()
	}
	hdr := func(max int32, recs ...[]byte) []byte {
		var b bytes.Buffer
		binary.Write(&b, binary.LittleEndian, max)
		for _, r := range recs {
			b.Write(r)
		}
		return b.Bytes()
	}
	tests := []struct {
		name string
		data []byte
		off  int64
	}{
		{"empty", nil, 0},
		{"short-header", []byte{1, 0}, 0},
		{"zero-max", hdr(0), 0},
		{"negative-max", hdr(-5), 0},
		{"huge-max", hdr(1 << 30), 0},
		{"truncated-record", append(hdr(4), 1, 2, 3, 4, 5), 4},
		{"negative-length", hdr(4, rec(0, -1, "")), 8},
		{"too-long", hdr(4, rec(0, 5, "abcde")), 8},
		{"truncated-text", hdr(4, rec(0, 3, "a")), 12},
		{"too-few-tokens", hdr(4, rec(0, 1, "a"), rec(0, 1, "b")), 22},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(bytes.NewReader(tt.data))
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ErrFormat) {
				t.Fatalf("err = %v, want a FormatError", err)
			}
			if fe.Offset != tt.off {
				t.Errorf("offset = %d, want %d (%v)", fe.Offset, tt.off, err)
			}
		})
	}
	if _, err := Load(filepath.Join("testdata", "missing.tok")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want ErrNotExist", err)
	}
}

func TestNewErrors(t *testing.T) {
	vocab, scores := tinyVocab()
	tests := []struct {
		name   string
		max    int
		vocab  []string
		scores []float32
		format bool
	}{
		{"lengths", 6, vocab, scores[1:], false},
		{"max-zero", 0, vocab, scores, true},
		{"long-token", 5, vocab, scores, true},
		{"few-tokens", 6, vocab[:258], scores[:258], true},
	}
	for _, tt := range tests {
		_, err := New(tt.max, tt.vocab, tt.scores)
		if err == nil || errors.Is(err, ErrFormat) != tt.format {
			t.Errorf("%s: New() = %v, want error (ErrFormat: %v)", tt.name, err, tt.format)
		}
	}
}

func TestEncode(t *testing.T) {
	tok := tinyTokenizer(t)
	const sp = 272
	tests := []struct {
		text     string
		bos, eos bool
		want     []int
	}{
		{"", false, false, []int{}},
		{"", true, true, []int{BOS, EOS}},
		{"hello", false, false, []int{267}},              // " "+h+e+l+l+o merges up to " hello"
		{"the", true, false, []int{BOS, 263}},            // " t" first, then "he", then " the"
		{"a", false, true, []int{261, EOS}},              // dummy prefix merges into " a"
		{"xaba", false, false, []int{sp, 282, 268, 273}}, // "ab" and "ba" tie: leftmost wins
		{"é!", false, false, []int{sp, 270}},             // two-byte code point, then merge
		{"日本", false, false, []int{sp, 271}},
		{"q", false, false, []int{sp, 'q' + 3}}, // byte fallback
		{"ü", false, false, []int{sp, 0xc3 + 3, 0xbc + 3}},
		{"\xff", false, false, []int{sp, 0xff + 3}}, // invalid UTF-8
		{"\xe6\x97", false, false, []int{sp, 0xe6 + 3, 0x97 + 3}},
		{"\x00", false, false, []int{sp, 3}},
		{"hello hello", false, false, []int{267, 267}},
	}
	for _, tt := range tests {
		got := tok.Encode(tt.text, tt.bos, tt.eos)
		if !slices.Equal(got, tt.want) {
			t.Errorf("Encode(%q, %v, %v) = %v, want %v", tt.text, tt.bos, tt.eos, got, tt.want)
		}
	}
}

// TestEncodeMatchesNaive compares the cached merge loop with a literal
// transcription of run.c on random text, including broken UTF-8.
func TestEncodeMatchesNaive(t *testing.T) {
	tok := tinyTokenizer(t)
	pieces := []string{" ", "a", "b", "h", "e", "l", "o", "t", "in", "é", "日", "本", "!", "q", "\xff", "\x97", "\xe6"}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		var sb strings.Builder
		for range r.IntN(40) {
			sb.WriteString(pieces[r.IntN(len(pieces))])
		}
		text := sb.String()
		bos := r.IntN(2) == 0
		if got, want := tok.Encode(text, bos, false), naiveEncode(tok, text, bos, false); !slices.Equal(got, want) {
			t.Fatalf("Encode(%q) = %v, run.c gives %v", text, got, want)
		}
	}
}

func TestDecode(t *testing.T) {
	tok := tinyTokenizer(t)
	tests := []struct {
		prev, id int
		want     string
	}{
		{BOS, 263, "the"},  // leading space dropped after BOS
		{5, 263, " the"},   // kept elsewhere
		{-1, 'A' + 3, "A"}, // byte token
		{-1, 0xff + 3, "\xff"},
		{BOS, 272, ""},
		{-1, 0, "<unk>"},
		{-1, 1000, ""},
		{-1, -3, ""},
	}
	for _, tt := range tests {
		if got := tok.Decode(tt.prev, tt.id); got != tt.want {
			t.Errorf("Decode(%d, %d) = %q, want %q", tt.prev, tt.id, got, tt.want)
		}
	}
	if got := tok.DecodeAll([]int{BOS, 263, 267, EOS, BOS, 261}); got != "the helloa" {
		t.Errorf("DecodeAll = %q, want %q", got, "the helloa")
	}
}

func TestDecodeAllRoundTrip(t *testing.T) {
	tok := tinyTokenizer(t)
	for _, s := range seedTexts(t) {
		if got := tok.DecodeAll(tok.Encode(s, true, true)); got != s {
			t.Errorf("DecodeAll(Encode(%q)) = %q", s, got)
		}
	}
}

func TestWriteTo(t *testing.T) {
	tok := tinyTokenizer(t)
	var buf bytes.Buffer
	n, err := tok.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo = %d, %v; buffer has %d", n, err, buf.Len())
	}
	back, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(back.vocab, tok.vocab) || !slices.Equal(back.scores, tok.scores) {
		t.Error("round trip changed the vocabulary")
	}
}

// TestStories checks the real stories260K tokenizer against llama2.c's
// output for the reference prompt and round-trips the evaluation text.
func TestStories(t *testing.T) {
	data := dataDir(t, "stories260K/tok512.bin", "text/tinystories-dev.txt")
	tok, err := Load(filepath.Join(data, "stories260K", "tok512.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if tok.VocabSize() != 512 || tok.MaxTokenLen() != 7 {
		t.Errorf("VocabSize() = %d, MaxTokenLen() = %d; want 512, 7", tok.VocabSize(), tok.MaxTokenLen())
	}
	ids := tok.Encode("Once upon a time", true, false)
	if want := []int{1, 403, 407, 261, 378}; !slices.Equal(ids, want) {
		t.Errorf("Encode = %v, want %v", ids, want)
	}
	if p := tok.Piece(407); p != " upon" {
		t.Errorf("Piece(407) = %q, want %q", p, " upon")
	}
	text, err := os.ReadFile(filepath.Join(data, "text", "tinystories-dev.txt"))
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for line := range strings.Lines(string(text)) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		ids := tok.Encode(line, true, false)
		total += len(ids)
		if got := tok.DecodeAll(ids); got != line {
			t.Errorf("round trip of %.40q... gives %.40q...", line, got)
		}
		if want := naiveEncode(tok, line, true, false); !slices.Equal(ids, want) {
			t.Errorf("Encode differs from the run.c transcription on %.40q...", line)
		}
	}
	// The evaluation protocol's documents: 9 lines, 6444 tokens with BOS.
	if total != 6444 {
		t.Errorf("dev text encodes to %d tokens, want 6444", total)
	}
}

func FuzzEncode(f *testing.F) {
	for _, s := range seedTexts(f) {
		f.Add(s)
	}
	tok := tinyTokenizer(f)
	f.Fuzz(func(t *testing.T, s string) {
		ids := tok.Encode(s, true, false)
		if want := naiveEncode(tok, s, true, false); !slices.Equal(ids, want) {
			t.Fatalf("Encode(%q) = %v, run.c gives %v", s, ids, want)
		}
		for _, id := range ids {
			if id < 0 || id >= tok.VocabSize() {
				t.Fatalf("Encode(%q) produced id %d", s, id)
			}
		}
		if got := tok.DecodeAll(ids); got != s {
			t.Fatalf("DecodeAll(Encode(%q)) = %q", s, got)
		}
	})
}

func FuzzRead(f *testing.F) {
	good, err := os.ReadFile(filepath.Join("testdata", "tiny.tok"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:100])
	f.Add([]byte{})
	for _, name := range []string{"hf-features.json", "hf-features2.json"} {
		js, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(js)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		tok, err := Read(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error %v is neither ErrFormat nor ErrUnsupported", err)
			}
			return
		}
		if tok.IsHF() {
			// A tokenizer.json has no llama2.c form; it must still encode
			// and decode anything without panicking.
			tok.DecodeAll(tok.Encode("hello <0x41> é\xff <s>", true, true))
			tok.EncodeSpecial("a  b")
			return
		}
		var buf bytes.Buffer
		if _, err := tok.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), data) {
			t.Fatal("accepted input does not round-trip")
		}
		// Any accepted vocabulary encodes and decodes without panicking.
		tok.DecodeAll(tok.Encode("hello <0x41> é\xff", true, true))
	})
}
