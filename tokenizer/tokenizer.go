// Package tokenizer implements the byte-pair tokenizer of llama2.c: the
// tokenizer.bin file format (as written by llama2.c's tokenizer.py export)
// and the encode and decode routines of llama2.c's run.c. It also reads
// Hugging Face tokenizer.json files holding Llama-style SentencePiece BPE
// tokenizers and encodes text with them exactly as the tokenizers library
// does; Load and Read tell the two formats apart by their content.
//
// A tokenizer file is a little-endian int32 maximum token length followed,
// until the end of the file, by one record per token: a float32 merge score,
// an int32 byte length and that many bytes of token text. Token ids are
// record indices. Ids 0, 1 and 2 are the unknown, beginning-of-sequence and
// end-of-sequence tokens, and ids 3 to 258 are the byte-fallback tokens
// "<0x00>" to "<0xFF>".
package tokenizer

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
)

// Special token ids fixed by the llama2.c vocabulary layout.
const (
	BOS = 1 // beginning of sequence
	EOS = 2 // end of sequence

	// byteOffset is the id of the byte-fallback token for byte 0x00.
	byteOffset = 3
	// minVocab is the smallest vocabulary holding every byte-fallback
	// token, which Encode relies on.
	minVocab = byteOffset + 256
	// maxTokenLimit bounds the declared maximum token length so that
	// Encode's scratch buffer cannot be made absurdly large by a header.
	maxTokenLimit = 1 << 16
)

// ErrFormat reports a malformed tokenizer file.
var ErrFormat = errors.New("tokenizer: invalid format")

// A FormatError describes malformed tokenizer data and the byte offset at
// which it was found. It matches ErrFormat under errors.Is.
type FormatError struct {
	Offset int64  // byte offset of the offending field
	Msg    string // what was wrong
}

// Error describes the problem and where it was found.
func (e *FormatError) Error() string {
	return "tokenizer: " + e.Msg + " at offset " + strconv.FormatInt(e.Offset, 10)
}

// Is reports whether target is ErrFormat.
func (e *FormatError) Is(target error) bool { return target == ErrFormat }

// A Tokenizer holds a llama2.c vocabulary. It is safe for concurrent use.
type Tokenizer struct {
	maxTokenLen int
	vocab       []string
	scores      []float32
	index       map[string]int // token text to the lowest id with that text
	space       int            // id of " ", or -1
	bos, eos    int            // sequence marker ids, or -1
	hf          *hfModel       // set for a tokenizer.json
}

// New returns a tokenizer for the given token texts and merge scores,
// indexed by token id. The vocabulary must hold at least 259 tokens so that
// every byte has a fallback id, and no token may be longer than
// maxTokenLen bytes.
func New(maxTokenLen int, vocab []string, scores []float32) (*Tokenizer, error) {
	if len(vocab) != len(scores) {
		return nil, fmt.Errorf("tokenizer: %d tokens but %d scores", len(vocab), len(scores))
	}
	if maxTokenLen < 1 || maxTokenLen > maxTokenLimit {
		return nil, fmt.Errorf("%w: maximum token length %d out of range [1, %d]", ErrFormat, maxTokenLen, maxTokenLimit)
	}
	if len(vocab) < minVocab {
		return nil, fmt.Errorf("%w: %d tokens, need at least %d for byte fallback", ErrFormat, len(vocab), minVocab)
	}
	t := &Tokenizer{
		maxTokenLen: maxTokenLen,
		vocab:       slices.Clone(vocab),
		scores:      slices.Clone(scores),
		index:       make(map[string]int, len(vocab)),
		space:       -1,
		bos:         BOS,
		eos:         EOS,
	}
	for id, s := range t.vocab {
		if len(s) > maxTokenLen {
			return nil, fmt.Errorf("%w: token %d is %d bytes, longer than maximum %d", ErrFormat, id, len(s), maxTokenLen)
		}
		// run.c binary-searches a sorted copy, so which of several equal
		// texts it finds is unspecified; the lowest id is a stable choice.
		if _, dup := t.index[s]; !dup {
			t.index[s] = id
		}
	}
	if id, ok := t.index[" "]; ok {
		t.space = id
	}
	return t, nil
}

// Read parses a tokenizer file from r, reading r to its end: a Hugging
// Face tokenizer.json when the content is a JSON object, else a llama2.c
// tokenizer file. A tokenizer.json must hold a BPE model and only the
// components Llama-style tokenizers use (see Encode); others give an error
// matching ErrUnsupported.
func Read(r io.Reader) (*Tokenizer, error) {
	// The file is small and has no count of its records, so reading it
	// whole bounds every later allocation by the input size.
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if looksJSON(data) {
		return parseHF(data)
	}
	return parse(data)
}

// Load reads the tokenizer file at path, a llama2.c tokenizer.bin or a
// Hugging Face tokenizer.json (see Read).
func Load(path string) (*Tokenizer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

func parse(data []byte) (*Tokenizer, error) {
	if len(data) < 4 {
		return nil, &FormatError{0, "short header"}
	}
	maxLen := int32(binary.LittleEndian.Uint32(data))
	if maxLen < 1 || maxLen > maxTokenLimit {
		return nil, &FormatError{0, fmt.Sprintf("maximum token length %d out of range [1, %d]", maxLen, maxTokenLimit)}
	}
	// Each record takes at least 8 bytes, which bounds the slice sizes.
	n := (len(data) - 4) / 8
	vocab := make([]string, 0, n)
	scores := make([]float32, 0, n)
	off := 4
	for off < len(data) {
		if len(data)-off < 8 {
			return nil, &FormatError{int64(off), "truncated token record"}
		}
		score := math.Float32frombits(binary.LittleEndian.Uint32(data[off:]))
		l := int32(binary.LittleEndian.Uint32(data[off+4:]))
		if l < 0 || l > maxLen {
			return nil, &FormatError{int64(off + 4), fmt.Sprintf("token length %d out of range [0, %d]", l, maxLen)}
		}
		off += 8
		if len(data)-off < int(l) {
			return nil, &FormatError{int64(off), "truncated token text"}
		}
		vocab = append(vocab, string(data[off:off+int(l)]))
		scores = append(scores, score)
		off += int(l)
	}
	if len(vocab) < minVocab {
		return nil, &FormatError{int64(off), fmt.Sprintf("%d tokens, need at least %d for byte fallback", len(vocab), minVocab)}
	}
	return New(int(maxLen), vocab, scores)
}

// WriteTo writes t in the llama2.c tokenizer file format. A tokenizer read
// from a tokenizer.json has no scores and cannot be written.
func (t *Tokenizer) WriteTo(w io.Writer) (int64, error) {
	if t.hf != nil {
		return 0, fmt.Errorf("%w: writing a tokenizer.json vocabulary as a llama2.c file", ErrUnsupported)
	}
	var buf bytes.Buffer
	buf.Grow(4 + 8*len(t.vocab))
	var b [8]byte
	binary.LittleEndian.PutUint32(b[:4], uint32(t.maxTokenLen))
	buf.Write(b[:4])
	for id, s := range t.vocab {
		binary.LittleEndian.PutUint32(b[:4], math.Float32bits(t.scores[id]))
		binary.LittleEndian.PutUint32(b[4:], uint32(len(s)))
		buf.Write(b[:])
		buf.WriteString(s)
	}
	return buf.WriteTo(w)
}

// VocabSize returns the number of tokens.
func (t *Tokenizer) VocabSize() int { return len(t.vocab) }

// MaxTokenLen returns the declared maximum token length in bytes.
func (t *Tokenizer) MaxTokenLen() int { return t.maxTokenLen }

// Piece returns the raw text of token id, or "" if id is out of range.
func (t *Tokenizer) Piece(id int) string {
	if id < 0 || id >= len(t.vocab) {
		return ""
	}
	return t.vocab[id]
}

// Score returns the merge score of token id, or 0 if id is out of range or
// the vocabulary came from a tokenizer.json, which ranks merges instead.
func (t *Tokenizer) Score(id int) float32 {
	if id < 0 || id >= len(t.scores) {
		return 0
	}
	return t.scores[id]
}

// Lookup returns the id of the token whose text is s.
func (t *Tokenizer) Lookup(s string) (id int, ok bool) {
	id, ok = t.index[s]
	return id, ok
}

// parseBytePiece decodes a byte-fallback token text "<0xHH>".
func parseBytePiece(s string) (byte, bool) {
	if len(s) != 6 || s[:3] != "<0x" || s[5] != '>' {
		return 0, false
	}
	v, err := strconv.ParseUint(s[3:5], 16, 8)
	if err != nil {
		return 0, false
	}
	return byte(v), true
}

// BOS returns the id of the beginning-of-sequence token: 1 for a llama2.c
// vocabulary, and for a tokenizer.json the special token its
// post-processor puts first, else "<s>"; -1 if there is none.
func (t *Tokenizer) BOS() int { return t.bos }

// EOS returns the id of the end-of-sequence token: 2 for a llama2.c
// vocabulary, and for a tokenizer.json the special token its
// post-processor puts last, else "</s>"; -1 if there is none.
func (t *Tokenizer) EOS() int { return t.eos }

// IsHF reports whether t was read from a Hugging Face tokenizer.json.
func (t *Tokenizer) IsHF() bool { return t.hf != nil }

// EncodeSpecial tokenizes text as the tokenizers library's
// encode(text, add_special_tokens=True) does: Encode's tokens placed in
// the post-processor's single-sequence template (for Llama, "<s>" then the
// text). For a llama2.c vocabulary it is Encode(text, true, false).
func (t *Tokenizer) EncodeSpecial(text string) []int {
	if t.hf != nil {
		return t.hf.encodeTemplate(text)
	}
	return t.Encode(text, true, false)
}

// Encode tokenizes text exactly as llama2.c's run.c encode(text, bos, eos)
// does, with SentencePiece's add_dummy_prefix behaviour: a non-empty text
// is preceded by the " " token (when the vocabulary has one). Each UTF-8
// code point (or each byte of a code point missing from the vocabulary) is
// a starting token, then the adjacent pair whose concatenation is the
// highest-scoring vocabulary entry is merged, leftmost first on ties, until
// no pair merges. If bos is set the result starts with BOS, which takes part
// in merging as in run.c; if eos is set it ends with EOS.
//
// Unlike run.c, which stops at a NUL byte, Encode treats NUL like any other
// byte.
//
// For a tokenizer.json, Encode gives the ids of the tokenizers library's
// encode(text, add_special_tokens=False), preceded by BOS() if bos is set
// and followed by EOS() if eos is set (when they exist): added tokens
// (leftmost-longest, honouring lstrip and rstrip) are split off first, the
// rest passes through the normalizer (Prepend, literal Replace), the
// Metaspace pre-tokenizer (prepend schemes always, first and never, with
// or without splitting) and the BPE model (merges by rank, lowest first
// and leftmost on ties; characters outside the vocabulary as their
// "<0xHH>" byte tokens with byte_fallback, else the unknown token, fused
// if fuse_unk). A byte of invalid UTF-8, which the library never sees, is
// treated as a character of its own.
func (t *Tokenizer) Encode(text string, bos, eos bool) []int {
	if t.hf != nil {
		ids := t.hf.encode(text)
		if bos && t.bos >= 0 {
			ids = append([]int{t.bos}, ids...)
		}
		if eos && t.eos >= 0 {
			ids = append(ids, t.eos)
		}
		return ids
	}
	ids := make([]int, 0, len(text)+3)
	if bos {
		ids = append(ids, BOS)
	}
	if text != "" && t.space >= 0 {
		ids = append(ids, t.space)
	}
	// Group bytes like run.c: a lead byte plus up to three continuation
	// bytes, so invalid UTF-8 splits exactly where run.c splits it.
	start := 0
	for i := 0; i < len(text); i++ {
		if i+1 < len(text) && text[i+1]&0xC0 == 0x80 && i+1-start < 4 {
			continue
		}
		piece := text[start : i+1]
		if id, ok := t.index[piece]; ok {
			ids = append(ids, id)
		} else {
			for j := 0; j < len(piece); j++ {
				ids = append(ids, int(piece[j])+byteOffset)
			}
		}
		start = i + 1
	}
	ids = t.merge(ids)
	if eos {
		ids = append(ids, EOS)
	}
	return ids
}

// merge applies run.c's greedy pair merging to ids in place. It caches the
// merge candidate of every adjacent pair, so each round costs one scan of
// the cache plus two lookups instead of a lookup per pair.
func (t *Tokenizer) merge(ids []int) []int {
	if len(ids) < 2 {
		return ids
	}
	buf := make([]byte, 0, 2*t.maxTokenLen)
	pair := func(a, b int) int {
		buf = append(append(buf[:0], t.vocab[a]...), t.vocab[b]...)
		if id, ok := t.index[string(buf)]; ok {
			return id
		}
		return -1
	}
	cand := make([]int, len(ids)-1)
	for i := range cand {
		cand[i] = pair(ids[i], ids[i+1])
	}
	for {
		// run.c starts from -1e10 and requires a strict improvement.
		best, bestScore := -1, float32(-1e10)
		for i, id := range cand {
			if id >= 0 && t.scores[id] > bestScore {
				best, bestScore = i, t.scores[id]
			}
		}
		if best < 0 {
			return ids
		}
		ids[best] = cand[best]
		ids = append(ids[:best+1], ids[best+2:]...)
		cand = append(cand[:best], cand[best+1:]...)
		if best > 0 {
			cand[best-1] = pair(ids[best-1], ids[best])
		}
		if best < len(cand) {
			cand[best] = pair(ids[best], ids[best+1])
		}
	}
}

// Decode returns the text of token id as run.c's decode(prev, id) does:
// byte-fallback tokens "<0xHH>" become the single byte 0xHH, and a leading
// space is dropped after BOS, as SentencePiece does. It returns "" for an id
// outside the vocabulary. For a tokenizer.json the piece's "▁" become
// spaces first; DecodeAll, not a concatenation of Decode results, is what
// the tokenizers library's decoder gives.
func (t *Tokenizer) Decode(prev, id int) string {
	if id < 0 || id >= len(t.vocab) {
		return ""
	}
	piece := t.vocab[id]
	if t.hf != nil {
		piece = strings.ReplaceAll(piece, "▁", " ")
	}
	if prev == t.bos && strings.HasPrefix(piece, " ") {
		piece = piece[1:]
	}
	if b, ok := parseBytePiece(piece); ok {
		return string([]byte{b})
	}
	return piece
}

// DecodeAll returns the text of a token sequence. BOS and EOS tokens
// produce no text, as they print nothing in run.c's generate, and the
// token after each BOS loses its leading space. For a tokenizer.json it is
// the tokenizers library's decode(ids, skip_special_tokens=True): special
// tokens dropped, the rest through the file's decoder (Replace,
// ByteFallback, Fuse, Strip, Metaspace), or joined by spaces without one.
func (t *Tokenizer) DecodeAll(ids []int) string {
	if t.hf != nil {
		return t.hf.decode(t.vocab, ids, true)
	}
	var sb strings.Builder
	prev := -1
	for _, id := range ids {
		if id != BOS && id != EOS {
			sb.WriteString(t.Decode(prev, id))
		}
		prev = id
	}
	return sb.String()
}
