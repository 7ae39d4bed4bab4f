package safetensors

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// A Source is an open checkpoint, either a single file (*ReadCloser) or a
// sharded set (*Sharded). Offsets in its TensorInfo values are relative to
// the file holding the tensor.
type Source interface {
	// Tensors returns every tensor, in storage order.
	Tensors() []TensorInfo
	// Tensor returns the named tensor's description.
	Tensor(name string) (TensorInfo, bool)
	// Metadata returns the checkpoint's string metadata, or nil.
	Metadata() map[string]string
	// Open returns a reader for the named tensor's bytes.
	Open(name string) (*io.SectionReader, error)
	// ReadTensor reads the named tensor's bytes.
	ReadTensor(name string) ([]byte, error)
	// Close releases the underlying files.
	Close() error
}

var (
	_ Source = (*ReadCloser)(nil)
	_ Source = (*Sharded)(nil)
)

// Sharded is a checkpoint split over several safetensors files, described by
// an index such as model.safetensors.index.json:
//
//	{"metadata": {"total_size": 123}, "weight_map": {"tensor": "shard file"}}
//
// Every shard's header is validated when the index is opened, and the
// weight_map must account for exactly the tensors the shards hold.
type Sharded struct {
	raw     []byte
	meta    map[string]string
	names   []string // shard file names, sorted
	shards  []*ReadCloser
	tensors []TensorInfo
	shardOf []int // index into shards for each tensor
	index   map[string]int
}

// OpenIndex opens a sharded checkpoint from its index file with default
// limits.
func OpenIndex(path string) (*Sharded, error) {
	return OpenIndexFile(path, nil)
}

// OpenIndexFile is like OpenIndex with explicit limits, which apply to the
// index file size and to every shard.
func OpenIndexFile(path string, opts *Options) (*Sharded, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if max := opts.maxHeaderSize(); fi.Size() > max {
		return nil, fmt.Errorf("%s: %w", path, &LimitError{Off: 0, What: "index size", Value: fi.Size(), Limit: max})
	}
	raw, err := io.ReadAll(io.LimitReader(f, fi.Size()))
	if err != nil {
		return nil, err
	}
	meta, weights, err := parseIndex(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}

	s := &Sharded{raw: raw, meta: meta, index: make(map[string]int)}
	if err := s.open(path, weights, opts); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// open opens every shard and checks it against the weight_map.
func (s *Sharded) open(path string, weights []weight, opts *Options) error {
	bad := func(off int64, format string, args ...any) error {
		return fmt.Errorf("%s: %w", path, formatErr(off, format, args...))
	}
	shardIdx := make(map[string]int)
	for _, w := range weights {
		shardIdx[w.shard] = 0
	}
	s.names = slices.Sorted(maps.Keys(shardIdx))
	dir := filepath.Dir(path)
	for i, name := range s.names {
		shardIdx[name] = i
		rc, err := OpenFile(filepath.Join(dir, name), opts)
		if err != nil {
			return err
		}
		s.shards = append(s.shards, rc)
	}

	want := make(map[string]string, len(weights))
	for _, w := range weights {
		want[w.tensor] = w.shard
	}
	for i, rc := range s.shards {
		for _, t := range rc.h.tensors {
			listed, ok := want[t.Name]
			switch {
			case !ok:
				return bad(-1, "shard %q holds tensor %q, which weight_map does not list", s.names[i], t.Name)
			case listed != s.names[i]:
				return bad(-1, "tensor %q is in shard %q but weight_map places it in %q", t.Name, s.names[i], listed)
			}
			s.index[t.Name] = len(s.tensors)
			s.tensors = append(s.tensors, t)
			s.shardOf = append(s.shardOf, i)
		}
	}
	for _, w := range weights {
		if _, ok := s.index[w.tensor]; !ok {
			return bad(w.off, "tensor %q is missing from shard %q", w.tensor, w.shard)
		}
	}
	return nil
}

// weight is one weight_map entry.
type weight struct {
	tensor, shard string
	off           int64
}

// parseIndex validates an index file. Duplicate keys are rejected at every
// level, as in headers. Metadata values that are not strings (total_size is
// a number) are kept as their compact JSON text.
func parseIndex(raw []byte) (map[string]string, []weight, error) {
	if i := invalidUTF8(raw); i >= 0 {
		return nil, nil, formatErr(int64(i), "index is not valid UTF-8")
	}
	if err := checkStrings(raw, 0); err != nil {
		return nil, nil, err
	}
	p := &headerParser{dec: json.NewDecoder(bytes.NewReader(raw)), raw: raw, what: "index"}
	p.dec.UseNumber()
	if err := p.expectDelim('{', "index"); err != nil {
		return nil, nil, err
	}
	var meta map[string]string
	var weights []weight
	seen := make(map[string]bool)
	haveWeights := false
	for p.dec.More() {
		key, err := p.key()
		if err != nil {
			return nil, nil, err
		}
		if seen[key] {
			return nil, nil, formatErr(p.off(), "duplicate key %q in index", key)
		}
		seen[key] = true
		switch key {
		case "metadata":
			if meta, err = p.indexMetadata(); err != nil {
				return nil, nil, err
			}
		case "weight_map":
			haveWeights = true
			if weights, err = p.weightMap(); err != nil {
				return nil, nil, err
			}
		default:
			if err := p.skip(); err != nil {
				return nil, nil, err
			}
		}
	}
	if err := p.expectDelim('}', "index"); err != nil {
		return nil, nil, err
	}
	end := p.dec.InputOffset()
	for i, c := range raw[end:] {
		if !isSpace(c) {
			return nil, nil, formatErr(end+int64(i), "unexpected data after index JSON")
		}
	}
	if !haveWeights {
		return nil, nil, formatErr(-1, "index has no weight_map")
	}
	return meta, weights, nil
}

func (p *headerParser) indexMetadata() (map[string]string, error) {
	off := p.off()
	tok, err := p.token()
	if err != nil {
		return nil, err
	}
	if tok == nil {
		return nil, nil
	}
	if tok != json.Delim('{') {
		return nil, formatErr(off, "index metadata is not an object")
	}
	m := make(map[string]string)
	for p.dec.More() {
		k, err := p.key()
		if err != nil {
			return nil, err
		}
		if _, dup := m[k]; dup {
			return nil, formatErr(p.off(), "duplicate key %q in index metadata", k)
		}
		start := p.dec.InputOffset()
		if err := p.skip(); err != nil {
			return nil, err
		}
		// The value's text follows the key's colon.
		text := bytes.TrimLeft(p.raw[start:p.dec.InputOffset()], " \t\r\n:")
		var v string
		if text[0] == '"' {
			err = json.Unmarshal(text, &v)
		} else {
			var b bytes.Buffer
			err = json.Compact(&b, text)
			v = b.String()
		}
		if err != nil {
			return nil, formatErr(p.base+start, "index metadata %q: %v", k, err)
		}
		m[k] = v
	}
	return m, p.expectDelim('}', "index metadata")
}

func (p *headerParser) weightMap() ([]weight, error) {
	if err := p.expectDelim('{', "weight_map"); err != nil {
		return nil, err
	}
	var ws []weight
	seen := make(map[string]bool)
	for p.dec.More() {
		k, err := p.key()
		if err != nil {
			return nil, err
		}
		off := p.off()
		if seen[k] || k == metadataKey {
			return nil, formatErr(off, "duplicate or reserved tensor %q in weight_map", k)
		}
		seen[k] = true
		tok, err := p.token()
		if err != nil {
			return nil, err
		}
		shard, ok := tok.(string)
		if !ok {
			return nil, formatErr(off, "weight_map entry %q is not a string", k)
		}
		if !validShardName(shard) {
			return nil, formatErr(off, "weight_map entry %q: shard %q is not a file name in the index directory", k, shard)
		}
		ws = append(ws, weight{tensor: k, shard: shard, off: off})
	}
	return ws, p.expectDelim('}', "weight_map")
}

// skip consumes one JSON value, rejecting duplicate object keys inside it.
// It is iterative so deeply nested input cannot exhaust the stack.
func (p *headerParser) skip() error {
	type frame struct {
		obj  bool
		keys map[string]bool
	}
	var stack []frame
	for {
		if n := len(stack); n > 0 {
			if !p.dec.More() {
				if _, err := p.token(); err != nil { // the closing delimiter
					return err
				}
				if stack = stack[:n-1]; len(stack) == 0 {
					return nil
				}
				continue
			}
			if top := stack[n-1]; top.obj {
				k, err := p.key()
				if err != nil {
					return err
				}
				if top.keys[k] {
					return formatErr(p.off(), "duplicate key %q", k)
				}
				top.keys[k] = true
			}
		}
		tok, err := p.token()
		if err != nil {
			return err
		}
		switch tok {
		case json.Delim('{'):
			stack = append(stack, frame{obj: true, keys: make(map[string]bool)})
		case json.Delim('['):
			stack = append(stack, frame{})
		}
		if len(stack) == 0 {
			return nil
		}
	}
}

// validShardName reports whether s names a file directly inside the index's
// directory; anything else could make an index read files elsewhere.
func validShardName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\\\x00") &&
		filepath.Base(s) == s && filepath.IsLocal(s)
}

// Tensors returns every tensor, shard by shard in shard name order and in
// data order within a shard. Offsets are relative to the tensor's shard.
func (s *Sharded) Tensors() []TensorInfo {
	ts := make([]TensorInfo, len(s.tensors))
	for i, t := range s.tensors {
		ts[i] = t.clone()
	}
	return ts
}

// Tensor returns the named tensor's description.
func (s *Sharded) Tensor(name string) (TensorInfo, bool) {
	i, ok := s.index[name]
	if !ok {
		return TensorInfo{}, false
	}
	return s.tensors[i].clone(), true
}

// Metadata returns the index's metadata object, with non-string values as
// compact JSON text, or nil if the index has none.
func (s *Sharded) Metadata() map[string]string { return maps.Clone(s.meta) }

// RawIndex returns a copy of the index file's bytes.
func (s *Sharded) RawIndex() []byte { return bytes.Clone(s.raw) }

// Shards returns the shard file names in sorted order.
func (s *Sharded) Shards() []string { return slices.Clone(s.names) }

// Shard returns the named shard.
func (s *Sharded) Shard(name string) (*File, bool) {
	i, ok := slices.BinarySearch(s.names, name)
	if !ok {
		return nil, false
	}
	return &s.shards[i].File, true
}

// ShardOf returns the name of the shard holding the named tensor.
func (s *Sharded) ShardOf(tensor string) (string, bool) {
	i, ok := s.index[tensor]
	if !ok {
		return "", false
	}
	return s.names[s.shardOf[i]], true
}

// Open returns a reader for the named tensor's bytes.
func (s *Sharded) Open(name string) (*io.SectionReader, error) {
	i, ok := s.index[name]
	if !ok {
		return nil, notFound(name)
	}
	return s.shards[s.shardOf[i]].Open(name)
}

// ReadTensor reads the named tensor's bytes.
func (s *Sharded) ReadTensor(name string) ([]byte, error) {
	i, ok := s.index[name]
	if !ok {
		return nil, notFound(name)
	}
	return s.shards[s.shardOf[i]].ReadTensor(name)
}

// Close closes every shard and returns their errors joined. Reads after
// Close fail with the shard files' os.ErrClosed.
func (s *Sharded) Close() error {
	var errs []error
	for _, rc := range s.shards {
		errs = append(errs, rc.Close())
	}
	return errors.Join(errs...)
}

// OpenPath opens a checkpoint given as a .safetensors file, an index file
// (any name ending in .json), or a directory holding exactly one of
// model.safetensors and *.index.json. A directory with neither but exactly
// one *.safetensors file opens that file.
func OpenPath(path string) (Source, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		if path, err = findCheckpoint(path); err != nil {
			return nil, err
		}
	}
	if strings.HasSuffix(path, ".json") {
		return OpenIndex(path)
	}
	return Open(path)
}

func findCheckpoint(dir string) (string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var primary, single []string
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		switch n := e.Name(); {
		case n == "model.safetensors" || strings.HasSuffix(n, ".index.json"):
			primary = append(primary, n)
			single = append(single, n)
		case strings.HasSuffix(n, ".safetensors"):
			single = append(single, n)
		}
	}
	switch {
	case len(primary) == 1:
		return filepath.Join(dir, primary[0]), nil
	case len(primary) > 1:
		return "", fmt.Errorf("safetensors: %s holds several checkpoints (%s): %w", dir, strings.Join(primary, ", "), ErrFormat)
	case len(single) == 1:
		return filepath.Join(dir, single[0]), nil
	case len(single) > 1:
		return "", fmt.Errorf("safetensors: %s holds several .safetensors files and no index: %w", dir, ErrFormat)
	}
	return "", fmt.Errorf("safetensors: %s: no checkpoint found: %w", dir, fs.ErrNotExist)
}
