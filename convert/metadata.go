package convert

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"unicode/utf8"

	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/safetensors"
)

// CompanionFiles are the files beside a checkpoint's weights that ToNWC
// records in the metadata when Options.CheckpointDir is set: the Hugging
// Face model and generation configurations and the tokenizer's files.
// Each is listed under format.MetaFiles (name, size, SHA-256) and, when it
// is text of at most format.MaxStoredFileBytes, stored whole under
// format.MetaFilePrefix + name. The cap keeps every configuration file
// (a Llama 3 tokenizer_config.json is 50 KB) and leaves out vocabularies
// (tokenizer.json, 2 to 17 MB) and binary tokenizer.model files, which a
// .nwc is no place for; their listing says which file a runtime needs.
var CompanionFiles = []string{
	"config.json", "generation_config.json",
	"tokenizer.json", "tokenizer.model", "tokenizer_config.json", "special_tokens_map.json",
	"added_tokens.json", "vocab.json", "merges.txt",
}

// companionFile is one entry of format.MetaFiles.
type companionFile struct {
	Name   string `json:"name"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	Stored bool   `json:"stored"`
}

// checkpointMetadata builds the file's metadata: the checkpoint's own (a single
// file's __metadata__ verbatim; for a sharded checkpoint the index's
// metadata, plus the keys every shard's __metadata__ agrees on that the
// index lacks, plus every shard's map under format.MetaShardMetadata) and
// the companion files in dir. It returns nil when there is none, so that
// a file without metadata stays without.
func checkpointMetadata(src safetensors.Source, dir string) (map[string]string, error) {
	var md map[string]string
	switch s := src.(type) {
	case *safetensors.ReadCloser:
		if s.HasMetadata() {
			if md = s.Metadata(); md == nil {
				md = map[string]string{}
			}
		}
	case *safetensors.Sharded:
		md = s.Metadata()
		per := map[string]map[string]string{}
		for _, name := range s.Shards() {
			sf, ok := s.Shard(name)
			if !ok {
				return nil, fmt.Errorf("convert: shard %q vanished", name)
			}
			if sf.HasMetadata() {
				if per[name] = sf.Metadata(); per[name] == nil {
					per[name] = map[string]string{}
				}
			}
		}
		if len(per) > 0 {
			if md == nil {
				md = map[string]string{}
			}
			if len(per) == len(s.Shards()) {
				for k, v := range per[s.Shards()[0]] {
					if _, ok := md[k]; ok {
						continue
					}
					common := true
					for _, m := range per {
						if w, ok := m[k]; !ok || w != v {
							common = false
							break
						}
					}
					if common {
						md[k] = v
					}
				}
			}
			b, err := marshalJSON(per)
			if err != nil {
				return nil, err
			}
			md[format.MetaShardMetadata] = b
		}
	default:
		md = src.Metadata()
	}
	if dir == "" {
		return md, nil
	}
	var files []companionFile
	for _, name := range CompanionFiles {
		cf, text, err := readCompanion(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("convert: %w", err)
		}
		if md == nil {
			md = map[string]string{}
		}
		if cf.Stored {
			md[format.MetaFilePrefix+name] = text
		}
		files = append(files, cf)
	}
	if len(files) > 0 {
		b, err := marshalJSON(files)
		if err != nil {
			return nil, err
		}
		md[format.MetaFiles] = b
	}
	return md, nil
}

// readCompanion describes the file at path and returns its text when it
// is to be stored. A missing file or one that is not a regular file gives
// an error satisfying errors.Is(err, fs.ErrNotExist).
func readCompanion(path string) (companionFile, string, error) {
	cf := companionFile{Name: filepath.Base(path)}
	f, err := os.Open(path)
	if err != nil {
		return cf, "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return cf, "", err
	}
	if !fi.Mode().IsRegular() {
		return cf, "", fmt.Errorf("%s is not a regular file: %w", path, fs.ErrNotExist)
	}
	h := sha256.New()
	var head bytes.Buffer
	n, err := io.Copy(io.MultiWriter(h, &limitedBuffer{&head, format.MaxStoredFileBytes + 1}), f)
	if err != nil {
		return cf, "", err
	}
	cf.Bytes, cf.SHA256 = n, hex.EncodeToString(h.Sum(nil))
	if n <= format.MaxStoredFileBytes && utf8.Valid(head.Bytes()) {
		cf.Stored = true
		return cf, head.String(), nil
	}
	return cf, "", nil
}

// limitedBuffer keeps the first n bytes written to it and discards the
// rest, so that hashing a large file does not hold it.
type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// marshalJSON is compact JSON without HTML escaping, keys sorted.
func marshalJSON(v any) (string, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n"))), nil
}
