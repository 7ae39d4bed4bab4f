package tokenizer

import (
	"bytes"
	"container/heap"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrUnsupported reports a tokenizer.json using a component or option that
// this package does not implement. Refusing it is safer than encoding text
// differently from the tokenizers library.
var ErrUnsupported = errors.New("tokenizer: unsupported")

// maxHFTokens bounds the vocabulary of a tokenizer.json; the largest real
// ones hold a few hundred thousand tokens.
const maxHFTokens = 1 << 22

// hfModel is a Hugging Face tokenizer.json BPE tokenizer: the pipeline of
// the tokenizers library (added tokens, normalizer, pre-tokenizer, BPE
// model, post-processor, decoder) restricted to the components Llama-style
// SentencePiece BPE tokenizers use.
type hfModel struct {
	vocab        map[string]int // BPE vocabulary (without added tokens)
	merges       map[[2]int]hfMerge
	unk          int // -1 without an unknown token
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	byteIDs      [256]int // id of "<0xHH>", or -1

	added      []hfAdded // matched on the raw text
	addedNorm  []hfAdded // matched on normalized text
	special    map[int]bool
	normalizer []hfNormalizer
	metaspace  *hfMetaspace // nil: no pre-tokenizer
	template   []hfTemplatePiece
	decoders   []hfDecoder
	hasDecoder bool
}

type hfMerge struct{ rank, id int }

type hfAdded struct {
	content        string
	id             int
	lstrip, rstrip bool
}

// An hfNormalizer is Prepend (prepend set) or a literal Replace.
type hfNormalizer struct {
	prepend          string
	pattern, content string
}

type hfMetaspace struct {
	repl    string
	prepend string // "always", "first" or "never"
	split   bool
}

// An hfTemplatePiece is a special token's ids or, when ids is nil, the
// encoded sequence.
type hfTemplatePiece struct{ ids []int }

type hfDecoder struct {
	kind             string // Replace, ByteFallback, Fuse, Strip, Metaspace
	pattern, content string
	start, stop      int
	prependNever     bool
}

// looksJSON reports whether data is a JSON object rather than a llama2.c
// tokenizer file, whose first four bytes are a little-endian length below
// 2^16 and so end in two zero bytes.
func looksJSON(data []byte) bool {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return false
	}
	return len(data) < 4 || data[2] != 0 || data[3] != 0
}

// hfJSON mirrors the parts of tokenizer.json this package reads.
type hfJSON struct {
	AddedTokens []struct {
		ID         *int   `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		Lstrip     bool   `json:"lstrip"`
		Rstrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Decoder       json.RawMessage `json:"decoder"`
	Model         struct {
		Type                    string            `json:"type"`
		Dropout                 *float64          `json:"dropout"`
		UnkToken                *string           `json:"unk_token"`
		ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
		FuseUnk                 bool              `json:"fuse_unk"`
		ByteFallback            bool              `json:"byte_fallback"`
		IgnoreMerges            bool              `json:"ignore_merges"`
		Vocab                   map[string]int    `json:"vocab"`
		Merges                  []json.RawMessage `json:"merges"`
	} `json:"model"`
}

// component is the common shape of a normalizer, pre-tokenizer,
// post-processor or decoder entry.
type component struct {
	Type          string            `json:"type"`
	Normalizers   []json.RawMessage `json:"normalizers"`
	PreTokenizers []json.RawMessage `json:"pretokenizers"`
	Processors    []json.RawMessage `json:"processors"`
	Decoders      []json.RawMessage `json:"decoders"`
	Prepend       string            `json:"prepend"`
	Pattern       struct {
		String *string `json:"String"`
		Regex  *string `json:"Regex"`
	} `json:"pattern"`
	Content        string  `json:"content"`
	Start          int     `json:"start"`
	Stop           int     `json:"stop"`
	Replacement    string  `json:"replacement"`
	PrependScheme  *string `json:"prepend_scheme"`
	AddPrefixSpace *bool   `json:"add_prefix_space"`
	Split          *bool   `json:"split"`
	Single         []struct {
		SpecialToken *struct {
			ID string `json:"id"`
		} `json:"SpecialToken"`
		Sequence *struct {
			ID string `json:"id"`
		} `json:"Sequence"`
	} `json:"single"`
	SpecialTokens map[string]struct {
		IDs []int `json:"ids"`
	} `json:"special_tokens"`
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(bytes.TrimSpace(raw)) == "null"
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: tokenizer.json: %s", ErrUnsupported, fmt.Sprintf(format, args...))
}

func badJSON(format string, args ...any) error {
	return fmt.Errorf("%w: tokenizer.json: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// parseHF reads a Hugging Face tokenizer.json holding a BPE model.
func parseHF(data []byte) (*Tokenizer, error) {
	var f hfJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, badJSON("%v", err)
	}
	mo := f.Model
	switch {
	case mo.Type != "BPE":
		return nil, unsupported("model type %q, want BPE", mo.Type)
	case mo.Dropout != nil && *mo.Dropout != 0:
		return nil, unsupported("BPE dropout (it makes encoding random)")
	case mo.ContinuingSubwordPrefix != nil && *mo.ContinuingSubwordPrefix != "":
		return nil, unsupported("continuing_subword_prefix")
	case mo.EndOfWordSuffix != nil && *mo.EndOfWordSuffix != "":
		return nil, unsupported("end_of_word_suffix")
	case len(mo.Vocab)+len(f.AddedTokens) > maxHFTokens:
		return nil, badJSON("%d tokens, more than %d", len(mo.Vocab)+len(f.AddedTokens), maxHFTokens)
	}
	// Ids index a table, so they must be dense enough that the table is
	// no larger than the number of tokens the file lists.
	n := len(mo.Vocab) + len(f.AddedTokens)
	pieces := make([]string, 0, n)
	set := func(id int, s string) error {
		if id < 0 || id >= n {
			return badJSON("token %q has id %d outside [0, %d)", s, id, n)
		}
		for len(pieces) <= id {
			pieces = append(pieces, "")
		}
		pieces[id] = s
		return nil
	}
	h := &hfModel{
		vocab:        mo.Vocab,
		merges:       make(map[[2]int]hfMerge, len(mo.Merges)),
		unk:          -1,
		fuseUnk:      mo.FuseUnk,
		byteFallback: mo.ByteFallback,
		ignoreMerges: mo.IgnoreMerges,
		special:      make(map[int]bool),
	}
	if h.vocab == nil {
		h.vocab = map[string]int{}
	}
	byID := make(map[int]string, len(h.vocab))
	for s, id := range h.vocab {
		if other, dup := byID[id]; dup {
			return nil, badJSON("tokens %q and %q share id %d", other, s, id)
		}
		byID[id] = s
		if err := set(id, s); err != nil {
			return nil, err
		}
	}
	for i := range h.byteIDs {
		h.byteIDs[i] = -1
		if id, ok := h.vocab[fmt.Sprintf("<0x%02X>", i)]; ok {
			h.byteIDs[i] = id
		}
	}
	if mo.UnkToken != nil {
		id, ok := h.vocab[*mo.UnkToken]
		if !ok {
			return nil, badJSON("unk_token %q is not in the vocabulary", *mo.UnkToken)
		}
		h.unk = id
	}
	for rank, raw := range mo.Merges {
		a, b, err := parseMerge(raw)
		if err != nil {
			return nil, badJSON("merge %d: %v", rank+1, err)
		}
		ia, oka := h.vocab[a]
		ib, okb := h.vocab[b]
		if !oka || !okb {
			return nil, badJSON("merge %d (%q, %q) uses a token not in the vocabulary", rank+1, a, b)
		}
		id, ok := h.vocab[a+b]
		if !ok {
			return nil, badJSON("merge %d (%q, %q) makes %q, not in the vocabulary", rank+1, a, b, a+b)
		}
		// A repeated pair takes its last rank, as the tokenizers library's
		// map of merges does.
		h.merges[[2]int{ia, ib}] = hfMerge{rank, id}
	}
	if err := h.parseNormalizer(f.Normalizer); err != nil {
		return nil, err
	}
	for _, at := range f.AddedTokens {
		if at.ID == nil {
			return nil, badJSON("added token %q has no id", at.Content)
		}
		if at.Content == "" {
			return nil, badJSON("added token %d is empty", *at.ID)
		}
		if at.SingleWord {
			return nil, unsupported("single_word added token %q", at.Content)
		}
		if s, ok := byID[*at.ID]; ok && s != at.Content {
			return nil, badJSON("added token %q has the id %d of vocabulary token %q", at.Content, *at.ID, s)
		}
		// The library keeps a normalized token as the normalizer makes
		// it, and both matches and decodes that form.
		content := at.Content
		if at.Normalized {
			content = h.normalize(content)
		}
		if err := set(*at.ID, content); err != nil {
			return nil, err
		}
		a := hfAdded{content: content, id: *at.ID, lstrip: at.Lstrip, rstrip: at.Rstrip}
		if at.Normalized {
			h.addedNorm = append(h.addedNorm, a)
		} else {
			h.added = append(h.added, a)
		}
		if at.Special {
			h.special[*at.ID] = true
		}
	}
	if err := h.parsePreTokenizer(f.PreTokenizer); err != nil {
		return nil, err
	}
	if err := h.parsePostProcessor(f.PostProcessor); err != nil {
		return nil, err
	}
	if err := h.parseDecoder(f.Decoder); err != nil {
		return nil, err
	}
	for _, p := range h.template {
		for _, id := range p.ids {
			if id < 0 || id >= len(pieces) {
				return nil, badJSON("template token id %d outside the vocabulary", id)
			}
		}
	}
	t := &Tokenizer{vocab: pieces, index: make(map[string]int, len(pieces)), space: -1, hf: h, bos: -1, eos: -1}
	for id, s := range pieces {
		t.maxTokenLen = max(t.maxTokenLen, len(s))
		if _, dup := t.index[s]; !dup && s != "" {
			t.index[s] = id
		}
	}
	// The post-processor's leading and trailing special tokens are the
	// sequence markers; without them, the usual SentencePiece names.
	if len(h.template) > 0 {
		if p := h.template[0].ids; len(p) == 1 {
			t.bos = p[0]
		}
		if p := h.template[len(h.template)-1].ids; len(p) == 1 && len(h.template) > 1 {
			t.eos = p[0]
		}
	}
	if id, ok := t.index["<s>"]; ok && t.bos < 0 {
		t.bos = id
	}
	if id, ok := t.index["</s>"]; ok && t.eos < 0 {
		t.eos = id
	}
	return t, nil
}

// parseMerge reads a merge in either of tokenizer.json's forms: "a b" or
// ["a", "b"].
func parseMerge(raw json.RawMessage) (string, string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		parts := strings.Split(s, " ")
		if len(parts) != 2 {
			return "", "", fmt.Errorf("%q is not two tokens separated by one space", s)
		}
		return parts[0], parts[1], nil
	}
	var pair []string
	if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
		return "", "", fmt.Errorf("%s is neither \"a b\" nor [\"a\", \"b\"]", raw)
	}
	return pair[0], pair[1], nil
}

func (h *hfModel) parseNormalizer(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return badJSON("normalizer: %v", err)
	}
	switch c.Type {
	case "Sequence":
		for _, r := range c.Normalizers {
			if err := h.parseNormalizer(r); err != nil {
				return err
			}
		}
	case "Prepend":
		h.normalizer = append(h.normalizer, hfNormalizer{prepend: c.Prepend})
	case "Replace":
		if c.Pattern.String == nil {
			return unsupported("Replace normalizer without a literal String pattern")
		}
		if *c.Pattern.String == "" {
			return badJSON("Replace normalizer with an empty pattern")
		}
		h.normalizer = append(h.normalizer, hfNormalizer{pattern: *c.Pattern.String, content: c.Content})
	default:
		return unsupported("normalizer %q", c.Type)
	}
	return nil
}

func (h *hfModel) parsePreTokenizer(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return badJSON("pre_tokenizer: %v", err)
	}
	switch c.Type {
	case "Sequence":
		if len(c.PreTokenizers) > 1 {
			return unsupported("a Sequence of %d pre-tokenizers", len(c.PreTokenizers))
		}
		for _, r := range c.PreTokenizers {
			return h.parsePreTokenizer(r)
		}
		return nil
	case "Metaspace":
		ms, err := parseMetaspace(c)
		if err != nil {
			return err
		}
		h.metaspace = ms
		return nil
	}
	return unsupported("pre_tokenizer %q", c.Type)
}

// parseMetaspace reads a Metaspace pre-tokenizer or decoder; files older
// than prepend_scheme say add_prefix_space, and split defaults to true.
func parseMetaspace(c component) (*hfMetaspace, error) {
	if utf8.RuneCountInString(c.Replacement) != 1 {
		return nil, badJSON("Metaspace replacement %q is not one character", c.Replacement)
	}
	ms := &hfMetaspace{repl: c.Replacement, prepend: "always", split: true}
	if c.Split != nil {
		ms.split = *c.Split
	}
	switch {
	case c.PrependScheme != nil:
		ms.prepend = *c.PrependScheme
	case c.AddPrefixSpace != nil && !*c.AddPrefixSpace:
		ms.prepend = "never"
	}
	switch ms.prepend {
	case "always", "first", "never":
	default:
		return nil, badJSON("Metaspace prepend_scheme %q", ms.prepend)
	}
	return ms, nil
}

func (h *hfModel) parsePostProcessor(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return badJSON("post_processor: %v", err)
	}
	switch c.Type {
	case "Sequence":
		if len(c.Processors) > 1 {
			return unsupported("a Sequence of %d post-processors", len(c.Processors))
		}
		for _, r := range c.Processors {
			return h.parsePostProcessor(r)
		}
		return nil
	case "TemplateProcessing":
	default:
		return unsupported("post_processor %q", c.Type)
	}
	seq := 0
	h.template = h.template[:0]
	for _, p := range c.Single {
		switch {
		case p.SpecialToken != nil:
			st, ok := c.SpecialTokens[p.SpecialToken.ID]
			if !ok {
				return badJSON("template names special token %q it does not define", p.SpecialToken.ID)
			}
			if len(st.IDs) == 0 {
				return badJSON("template special token %q has no ids", p.SpecialToken.ID)
			}
			h.template = append(h.template, hfTemplatePiece{ids: st.IDs})
		case p.Sequence != nil:
			if p.Sequence.ID != "A" {
				return badJSON("single-sequence template uses sequence %q", p.Sequence.ID)
			}
			seq++
			h.template = append(h.template, hfTemplatePiece{})
		default:
			return badJSON("template piece is neither SpecialToken nor Sequence")
		}
	}
	if seq != 1 {
		return badJSON("single-sequence template holds the sequence %d times", seq)
	}
	return nil
}

func (h *hfModel) parseDecoder(raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	h.hasDecoder = true
	var c component
	if err := json.Unmarshal(raw, &c); err != nil {
		return badJSON("decoder: %v", err)
	}
	switch c.Type {
	case "Sequence":
		for _, r := range c.Decoders {
			if err := h.parseDecoder(r); err != nil {
				return err
			}
		}
	case "Replace":
		if c.Pattern.String == nil {
			return unsupported("Replace decoder without a literal String pattern")
		}
		if *c.Pattern.String == "" {
			return badJSON("Replace decoder with an empty pattern")
		}
		h.decoders = append(h.decoders, hfDecoder{kind: c.Type, pattern: *c.Pattern.String, content: c.Content})
	case "ByteFallback", "Fuse":
		h.decoders = append(h.decoders, hfDecoder{kind: c.Type})
	case "Strip":
		if utf8.RuneCountInString(c.Content) != 1 || c.Start < 0 || c.Stop < 0 {
			return badJSON("Strip decoder %q %d %d", c.Content, c.Start, c.Stop)
		}
		h.decoders = append(h.decoders, hfDecoder{kind: c.Type, content: c.Content, start: c.Start, stop: c.Stop})
	case "Metaspace":
		ms, err := parseMetaspace(c)
		if err != nil {
			return err
		}
		h.decoders = append(h.decoders, hfDecoder{kind: c.Type, pattern: ms.repl, prependNever: ms.prepend == "never"})
	default:
		return unsupported("decoder %q", c.Type)
	}
	return nil
}

// A segment is a span of text still to be tokenized, or an added token's
// id when id >= 0. first marks the text that starts at offset 0 of the
// input, which Metaspace's "first" scheme prepends to.
type segment struct {
	text  string
	id    int
	first bool
}

// splitAdded splits text around the leftmost-longest matches of the added
// tokens, as the tokenizers library's added vocabulary does, honouring
// lstrip and rstrip. Empty spans are dropped.
func splitAdded(text string, first bool, tokens []hfAdded, out []segment) []segment {
	if len(tokens) == 0 {
		if text != "" {
			out = append(out, segment{text: text, id: -1, first: first})
		}
		return out
	}
	prev := 0 // end of the last match
	for i := 0; i < len(text); {
		best := -1
		for k, a := range tokens {
			if strings.HasPrefix(text[i:], a.content) && (best < 0 || len(a.content) > len(tokens[best].content)) {
				best = k
			}
		}
		if best < 0 {
			i++
			continue
		}
		a := tokens[best]
		start, stop := i, i+len(a.content)
		if a.lstrip {
			start = max(prev, len(strings.TrimRightFunc(text[:start], unicode.IsSpace)))
		}
		if a.rstrip {
			stop = len(text) - len(strings.TrimLeftFunc(text[stop:], unicode.IsSpace))
		}
		if prev < start {
			out = append(out, segment{text: text[prev:start], id: -1, first: first && prev == 0})
		}
		out = append(out, segment{id: a.id})
		prev, i = stop, stop
	}
	if prev < len(text) {
		out = append(out, segment{text: text[prev:], id: -1, first: first && prev == 0})
	}
	return out
}

// normalize applies the normalizer sequence.
func (h *hfModel) normalize(s string) string {
	for _, n := range h.normalizer {
		switch {
		case n.pattern != "":
			s = strings.ReplaceAll(s, n.pattern, n.content)
		case s != "":
			s = n.prepend + s
		}
	}
	return s
}

// preTokenize applies the Metaspace pre-tokenizer, returning the words.
func (h *hfModel) preTokenize(s string, first bool, words []string) []string {
	ms := h.metaspace
	if ms == nil {
		return append(words, s)
	}
	s = strings.ReplaceAll(s, " ", ms.repl)
	if !strings.HasPrefix(s, ms.repl) && (ms.prepend == "always" || ms.prepend == "first" && first) {
		s = ms.repl + s
	}
	if !ms.split {
		return append(words, s)
	}
	// Each replacement character starts a word (MergedWithNext).
	start := 0
	_, w := utf8.DecodeRuneInString(s)
	for i := w; i < len(s); {
		if strings.HasPrefix(s[i:], ms.repl) {
			words = append(words, s[start:i])
			start = i
			i += len(ms.repl)
			continue
		}
		_, w := utf8.DecodeRuneInString(s[i:])
		i += w
	}
	return append(words, s[start:])
}

// encode returns the ids of text without post-processing.
func (h *hfModel) encode(text string) []int {
	var ids []int
	segs := splitAdded(text, true, h.added, nil)
	var norm []segment
	for _, sg := range segs {
		if sg.id >= 0 {
			norm = append(norm, sg)
			continue
		}
		norm = splitAdded(h.normalize(sg.text), sg.first, h.addedNorm, norm)
	}
	var words []string
	for _, sg := range norm {
		if sg.id >= 0 {
			ids = append(ids, sg.id)
			continue
		}
		words = h.preTokenize(sg.text, sg.first, words[:0])
		for _, w := range words {
			ids = h.bpe(w, ids)
		}
	}
	return ids
}

// encodeTemplate is encode followed by the post-processor's template.
func (h *hfModel) encodeTemplate(text string) []int {
	ids := h.encode(text)
	if len(h.template) == 0 {
		return ids
	}
	out := make([]int, 0, len(ids)+len(h.template))
	for _, p := range h.template {
		if p.ids == nil {
			out = append(out, ids...)
		} else {
			out = append(out, p.ids...)
		}
	}
	return out
}

// symbol is a token of a word being merged, linked to its live
// neighbours.
type symbol struct {
	id, prev, next int
	gone           bool
}

// mergeItem is a candidate merge of the symbols at pos and its next.
type mergeItem struct{ rank, pos, id int }

type mergeQueue []mergeItem

func (q mergeQueue) Len() int { return len(q) }
func (q mergeQueue) Less(i, j int) bool {
	if q[i].rank != q[j].rank {
		return q[i].rank < q[j].rank
	}
	return q[i].pos < q[j].pos
}
func (q mergeQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *mergeQueue) Push(x any)   { *q = append(*q, x.(mergeItem)) }
func (q *mergeQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// bpe appends the ids of one word, as the tokenizers library's BPE model
// encodes it: characters (or their byte-fallback tokens, or the unknown
// token) merged pair by pair, the pair of lowest merge rank first and the
// leftmost on ties.
func (h *hfModel) bpe(w string, ids []int) []int {
	if w == "" {
		return ids
	}
	if h.ignoreMerges {
		if id, ok := h.vocab[w]; ok {
			return append(ids, id)
		}
	}
	var syms []symbol
	add := func(id int) { syms = append(syms, symbol{id: id}) }
	unk := -1 // a pending unknown token, as the library holds it
	for i := 0; i < len(w); {
		r, n := utf8.DecodeRuneInString(w[i:])
		c := w[i : i+n]
		i += n
		if r == utf8.RuneError && n == 1 {
			// Go strings may hold invalid UTF-8, which the library's never
			// do: such a byte is treated as a character of its own.
			c = w[i-1 : i]
		}
		if id, ok := h.vocab[c]; ok {
			if unk >= 0 {
				add(unk)
				unk = -1
			}
			add(id)
			continue
		}
		if h.byteFallback {
			ok := true
			for j := 0; j < len(c); j++ {
				ok = ok && h.byteIDs[c[j]] >= 0
			}
			if ok {
				// The library adds the bytes without flushing a pending
				// unknown token first.
				for j := 0; j < len(c); j++ {
					add(h.byteIDs[c[j]])
				}
				continue
			}
		}
		if h.unk >= 0 {
			if unk >= 0 && !h.fuseUnk {
				add(unk)
			}
			unk = h.unk
		}
	}
	if unk >= 0 {
		add(unk)
	}
	if len(syms) == 0 {
		return ids // every character dropped: no unknown token to stand for them
	}
	for i := range syms {
		syms[i].prev, syms[i].next = i-1, i+1
	}
	syms[len(syms)-1].next = -1
	q := make(mergeQueue, 0, len(syms))
	for i := 0; i+1 < len(syms); i++ {
		if m, ok := h.merges[[2]int{syms[i].id, syms[i+1].id}]; ok {
			q = append(q, mergeItem{m.rank, i, m.id})
		}
	}
	heap.Init(&q)
	for q.Len() > 0 {
		top := heap.Pop(&q).(mergeItem)
		s := &syms[top.pos]
		if s.gone || s.next < 0 {
			continue
		}
		right := &syms[s.next]
		// A queued merge is stale once either symbol has grown.
		if m, ok := h.merges[[2]int{s.id, right.id}]; !ok || m.id != top.id {
			continue
		}
		s.id = top.id
		right.gone = true
		s.next = right.next
		if s.next >= 0 {
			syms[s.next].prev = top.pos
		}
		if s.prev >= 0 {
			if m, ok := h.merges[[2]int{syms[s.prev].id, s.id}]; ok {
				heap.Push(&q, mergeItem{m.rank, s.prev, m.id})
			}
		}
		if s.next >= 0 {
			if m, ok := h.merges[[2]int{s.id, syms[s.next].id}]; ok {
				heap.Push(&q, mergeItem{m.rank, top.pos, m.id})
			}
		}
	}
	for _, s := range syms {
		if !s.gone {
			ids = append(ids, s.id)
		}
	}
	return ids
}

// decode runs the decoder over the tokens of ids, skipping special tokens
// when skipSpecial is set, as the library's decode does.
func (h *hfModel) decode(pieces []string, ids []int, skipSpecial bool) string {
	toks := make([]string, 0, len(ids))
	for _, id := range ids {
		if id < 0 || id >= len(pieces) || (skipSpecial && h.special[id]) {
			continue
		}
		toks = append(toks, pieces[id])
	}
	if !h.hasDecoder {
		return strings.Join(toks, " ")
	}
	for _, d := range h.decoders {
		toks = d.apply(toks)
	}
	return strings.Join(toks, "")
}

func (d hfDecoder) apply(toks []string) []string {
	switch d.kind {
	case "Replace":
		for i, t := range toks {
			toks[i] = strings.ReplaceAll(t, d.pattern, d.content)
		}
	case "Fuse":
		return []string{strings.Join(toks, "")}
	case "Strip":
		c, _ := utf8.DecodeRuneInString(d.content)
		for i, t := range toks {
			r := []rune(t)
			lo, hi := 0, len(r)
			for lo < d.start && lo < hi && r[lo] == c {
				lo++
			}
			for n := 0; n < d.stop && hi > lo && r[hi-1] == c; n++ {
				hi--
			}
			toks[i] = string(r[lo:hi])
		}
	case "Metaspace":
		for i, t := range toks {
			if i == 0 && !d.prependNever {
				toks[i] = strings.ReplaceAll(t, d.pattern, "")
			} else {
				toks[i] = strings.ReplaceAll(t, d.pattern, " ")
			}
		}
	case "ByteFallback":
		out := toks[:0:0]
		var pending []byte
		flush := func() {
			if len(pending) == 0 {
				return
			}
			if utf8.Valid(pending) {
				out = append(out, string(pending))
			} else {
				for range pending {
					out = append(out, "\uFFFD")
				}
			}
			pending = pending[:0]
		}
		for _, t := range toks {
			if b, ok := parseBytePiece(t); ok {
				pending = append(pending, b)
				continue
			}
			flush()
			out = append(out, t)
		}
		flush()
		return out
	}
	return toks
}

// hfPiece converts a llama2.c piece to its SentencePiece form.
func hfPiece(id int, s string) string {
	switch id {
	case BOS:
		return "<s>"
	case EOS:
		return "</s>"
	}
	return strings.ReplaceAll(s, " ", "▁")
}

// HFOptions selects the form of the tokenizer.json WriteHF writes.
type HFOptions struct {
	// Metaspace writes the newer form, a Metaspace pre-tokenizer
	// (prepend_scheme "first", no split) and no normalizer, instead of the
	// legacy Prepend("▁") and Replace(" ", "▁") normalizer.
	Metaspace bool
	// ArrayMerges writes merges as ["a", "b"] pairs instead of "a b".
	ArrayMerges bool
}

// WriteHF writes t, a llama2.c SentencePiece BPE vocabulary, as a Hugging
// Face tokenizer.json the way transformers' LlamaConverter converts a
// SentencePiece model: pieces with "▁" for spaces, ids 0, 1 and 2 as the
// special tokens <unk>, <s> and </s> (score 0), byte fallback, a template
// adding <s>, and merges derived as its SentencePieceExtractor does: for
// each piece in id order, every split into two pieces of the vocabulary
// (ordered by the ids of the two halves), all stably sorted by the merged
// piece's score, highest first. A tokenizer read from a tokenizer.json
// cannot be written again.
func (t *Tokenizer) WriteHF(w io.Writer, opt HFOptions) error {
	if t.hf != nil {
		return fmt.Errorf("%w: writing a tokenizer read from tokenizer.json", ErrUnsupported)
	}
	vocab := make(map[string]int, len(t.vocab))
	pieces := make([]string, len(t.vocab))
	for id, s := range t.vocab {
		p := hfPiece(id, s)
		if other, dup := vocab[p]; dup {
			return fmt.Errorf("%w: tokens %d and %d are both %q", ErrFormat, other, id, p)
		}
		vocab[p] = id
		pieces[id] = p
	}
	type merge struct {
		l, r  string
		score float32
	}
	var merges []merge
	for id, p := range pieces {
		score := t.scores[id]
		if id < byteOffset {
			score = 0
		}
		start := len(merges)
		for i := range p {
			if i == 0 {
				continue
			}
			l, r := p[:i], p[i:]
			_, okl := vocab[l]
			_, okr := vocab[r]
			if okl && okr {
				merges = append(merges, merge{l, r, score})
			}
		}
		local := merges[start:]
		sortStable(local, func(a, b merge) bool {
			if vocab[a.l] != vocab[b.l] {
				return vocab[a.l] < vocab[b.l]
			}
			return vocab[a.r] < vocab[b.r]
		})
	}
	sortStable(merges, func(a, b merge) bool { return a.score > b.score })

	type added struct {
		ID         int    `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		Lstrip     bool   `json:"lstrip"`
		Rstrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	}
	var at []added
	for id := range byteOffset {
		at = append(at, added{ID: id, Content: pieces[id], Special: true})
	}
	ms := map[string]any{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false}
	var normalizer, preTokenizer any
	if opt.Metaspace {
		preTokenizer = ms
	} else {
		normalizer = map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "Prepend", "prepend": "▁"},
			map[string]any{"type": "Replace", "pattern": map[string]string{"String": " "}, "content": "▁"},
		}}
	}
	mergeList := make([]any, len(merges))
	for i, m := range merges {
		if opt.ArrayMerges {
			mergeList[i] = []string{m.l, m.r}
		} else {
			mergeList[i] = m.l + " " + m.r
		}
	}
	bos := pieces[BOS]
	doc := map[string]any{
		"version":       "1.0",
		"truncation":    nil,
		"padding":       nil,
		"added_tokens":  at,
		"normalizer":    normalizer,
		"pre_tokenizer": preTokenizer,
		"post_processor": map[string]any{
			"type":   "TemplateProcessing",
			"single": []any{map[string]any{"SpecialToken": map[string]any{"id": bos, "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}},
			"pair": []any{map[string]any{"SpecialToken": map[string]any{"id": bos, "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}},
				map[string]any{"SpecialToken": map[string]any{"id": bos, "type_id": 1}}, map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 1}}},
			"special_tokens": map[string]any{bos: map[string]any{"id": bos, "ids": []int{BOS}, "tokens": []string{bos}}},
		},
		"decoder": map[string]any{"type": "Sequence", "decoders": []any{
			map[string]any{"type": "Replace", "pattern": map[string]string{"String": "▁"}, "content": " "},
			map[string]any{"type": "ByteFallback"},
			map[string]any{"type": "Fuse"},
			map[string]any{"type": "Strip", "content": " ", "start": 1, "stop": 0},
		}},
		"model": map[string]any{
			"type": "BPE", "dropout": nil, "unk_token": pieces[0], "continuing_subword_prefix": nil,
			"end_of_word_suffix": nil, "fuse_unk": true, "byte_fallback": true, "ignore_merges": false,
			"vocab": vocab, "merges": mergeList,
		},
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	return enc.Encode(doc)
}

// sortStable sorts s stably by less.
func sortStable[T any](s []T, less func(a, b T) bool) {
	slices.SortStableFunc(s, func(a, b T) int {
		switch {
		case less(a, b):
			return -1
		case less(b, a):
			return 1
		}
		return 0
	})
}
