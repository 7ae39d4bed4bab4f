package tokenizer

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwcodec/nwc/internal/shareddata"
)

var update = flag.Bool("update", false, "rewrite testdata fixtures")

// tinyMerges are the merge tokens of the test vocabulary with their
// scores; "ab" and "ba" tie to exercise leftmost-first merging.
var tinyMerges = []struct {
	s     string
	score float32
}{
	{" t", -1}, {"he", -2}, {" a", -3}, {"in", -4}, {" the", -5}, {"ll", -6},
	{" he", -7}, {"llo", -8}, {" hello", -9}, {"ab", -10}, {"ba", -10},
	{"é!", -11}, {"日本", -12},
}

// tinyChars are the single-code-point tokens of the test vocabulary.
var tinyChars = []string{" ", "a", "b", "e", "h", "i", "l", "n", "o", "t", "x", "é", "日", "本", "!", "."}

// tinyVocab builds the test vocabulary in llama2.c's layout: special
// tokens, 256 byte tokens, merges by decreasing score, then characters.
func tinyVocab() ([]string, []float32) {
	vocab := []string{"<unk>", "\n<s>\n", "\n</s>\n"}
	for b := range 256 {
		vocab = append(vocab, fmt.Sprintf("<0x%02X>", b))
	}
	scores := make([]float32, len(vocab))
	for _, m := range tinyMerges {
		vocab = append(vocab, m.s)
		scores = append(scores, m.score)
	}
	for i, c := range tinyChars {
		vocab = append(vocab, c)
		scores = append(scores, float32(-100-i))
	}
	return vocab, scores
}

func tinyTokenizer(t testing.TB) *Tokenizer {
	t.Helper()
	vocab, scores := tinyVocab()
	tok, err := New(6, vocab, scores)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// naiveEncode transcribes run.c's encode() literally: no pair cache, every
// round rebuilding and looking up every adjacent concatenation.
func naiveEncode(t *Tokenizer, text string, bos, eos bool) []int {
	var ids []int
	if bos {
		ids = append(ids, BOS)
	}
	if text != "" {
		if id, ok := t.Lookup(" "); ok {
			ids = append(ids, id)
		}
	}
	var buf []byte
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c&0xC0 != 0x80 {
			buf = buf[:0]
		}
		buf = append(buf, c)
		if i+1 < len(text) && text[i+1]&0xC0 == 0x80 && len(buf) < 4 {
			continue
		}
		if id, ok := t.Lookup(string(buf)); ok {
			ids = append(ids, id)
		} else {
			for _, b := range buf {
				ids = append(ids, int(b)+3)
			}
		}
		buf = buf[:0]
	}
	for {
		best, bestID, bestScore := -1, -1, float32(-1e10)
		for i := 0; i+1 < len(ids); i++ {
			id, ok := t.Lookup(t.Piece(ids[i]) + t.Piece(ids[i+1]))
			if ok && t.Score(id) > bestScore {
				best, bestID, bestScore = i, id, t.Score(id)
			}
		}
		if best < 0 {
			break
		}
		ids[best] = bestID
		ids = append(ids[:best+1], ids[best+2:]...)
	}
	if eos {
		ids = append(ids, EOS)
	}
	return ids
}

// dataDir returns the shared data directory after requiring the named
// files in it (paths relative to it); see package internal/testdata.
func dataDir(t testing.TB, files ...string) string {
	t.Helper()
	for _, f := range files {
		shareddata.Path(t, f)
	}
	return shareddata.Dir(t)
}

// seedTexts returns the fuzz seed strings kept in testdata/seeds.txt, one
// per line.
func seedTexts(t testing.TB) []string {
	data, err := os.ReadFile(filepath.Join("testdata", "seeds.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// TestUpdateFixtures rewrites testdata/tiny.tok when run with -update and
// otherwise checks that the committed fixture is what tinyVocab makes.
func TestUpdateFixtures(t *testing.T) {
	var buf bytes.Buffer
	if _, err := tinyTokenizer(t).WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "tiny.tok")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, buf.Bytes()) {
		t.Fatalf("%s is stale; run go test -run TestUpdateFixtures -update", path)
	}
}
