package format

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// A sharded .nwc is a set of part files written from one conversion plan
// (nwc plan, then nwc convert --plan --part I/N per part) and an index
// file beside them, the safetensors convention:
//
//	{"metadata": {"total_size": 2200000000, "nwc_plan": "…", "nwc_parts": 4},
//	 "weight_map": {"model.embed_tokens.weight": "model-00001-of-00004.nwc", …}}
//
// Each part is an ordinary .nwc file. Its metadata names the plan it was
// made from (MetaPlan, the SHA-256 of the plan file) and its place in the
// set (MetaPart, "I/N"); a file converted in one process from the same plan
// carries MetaPlan but not MetaPart, and so does the file nwc merge makes
// of the parts, which is byte for byte the same file.
const (
	// ShardIndexName is the index file's name in a part directory.
	ShardIndexName = "model.nwc.index.json"
	// ShardIndexSuffix ends the name of any sharded .nwc index.
	ShardIndexSuffix = ".nwc.index.json"
	// MetaPlan is the metadata key holding the hex SHA-256 of the plan a
	// file was converted with.
	MetaPlan = "nwc.plan"
	// MetaPart is the metadata key holding a part's "I/N" (1 ≤ I ≤ N).
	MetaPart = "nwc.part"
	// MetaSourceShards is the metadata key holding the source's shard
	// layout, as JSON {"shard file": ["tensor", …], …}, so that decoding
	// can write the checkpoint back in the shards it came in.
	MetaSourceShards = "nwc.source_shards"
	// MaxShardIndexSize bounds the index file a reader accepts: a weight
	// map of 100 k tensors with 100-byte names and file names fits.
	MaxShardIndexSize = 64 << 20
	// MaxParts bounds the number of parts of a set.
	MaxParts = 99999
)

// PartName is the file name of part i of n (1-based), as Hugging Face
// names shards: model-00002-of-00004.nwc.
func PartName(i, n int) string { return fmt.Sprintf("model-%05d-of-%05d.nwc", i, n) }

var partNameRE = regexp.MustCompile(`^model-([0-9]{5})-of-([0-9]{5})\.nwc$`)

// ParsePartName returns the part number and count a PartName holds.
func ParsePartName(name string) (i, n int, ok bool) {
	m := partNameRE.FindStringSubmatch(name)
	if m == nil {
		return 0, 0, false
	}
	i, _ = strconv.Atoi(m[1])
	n, _ = strconv.Atoi(m[2])
	return i, n, i >= 1 && i <= n
}

// FormatPart formats a MetaPart value.
func FormatPart(i, n int) string { return strconv.Itoa(i) + "/" + strconv.Itoa(n) }

// ParsePart parses a MetaPart value.
func ParsePart(s string) (i, n int, ok bool) {
	a, b, found := strings.Cut(s, "/")
	if !found {
		return 0, 0, false
	}
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	return i, n, err1 == nil && err2 == nil && i >= 1 && i <= n && n <= MaxParts
}

// A ShardIndex is a sharded .nwc's index file.
type ShardIndex struct {
	Metadata ShardMetadata `json:"metadata"`
	// WeightMap maps every tensor to the part file holding it.
	WeightMap map[string]string `json:"weight_map"`
}

// ShardMetadata is the metadata object of a ShardIndex.
type ShardMetadata struct {
	// TotalSize is the bytes of every tensor decoded in its own dtype,
	// as safetensors' total_size counts them (tools use it to size
	// memory before loading).
	TotalSize uint64 `json:"total_size"`
	// Plan is the hex SHA-256 of the plan every part was made from.
	Plan string `json:"nwc_plan"`
	// Parts is the number of part files.
	Parts int `json:"nwc_parts"`
	// IndexUncompressed records that the parts' indexes were written as
	// plain msgpack (nwc convert --index-uncompressed), so that merging
	// them writes the same file one process would.
	IndexUncompressed bool `json:"nwc_index_uncompressed,omitempty"`
}

// Marshal encodes the index as indented JSON with sorted keys: the same
// set gives the same bytes, so every part process may write it.
func (x *ShardIndex) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(x, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// ParseShardIndex parses and checks an index file: a plan hash, a part
// count in [1, MaxParts], and a weight map whose files are the parts'
// names (PartName) with every part holding at least one tensor. Errors
// wrap ErrFormat.
func ParseShardIndex(b []byte) (*ShardIndex, error) {
	if len(b) > MaxShardIndexSize {
		return nil, &LimitError{What: "sharded index size", Value: uint64(len(b)), Limit: MaxShardIndexSize}
	}
	var x ShardIndex
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&x); err != nil {
		return nil, Errorf(-1, "sharded index: %v", err)
	}
	if d.More() {
		return nil, Errorf(-1, "sharded index: data after the JSON object")
	}
	if x.Metadata.Plan == "" {
		for _, f := range x.WeightMap {
			if strings.HasSuffix(f, ".safetensors") {
				return nil, Errorf(-1, "a safetensors index (its weight_map names .safetensors files), not a sharded .nwc's")
			}
		}
	}
	if !validHash(x.Metadata.Plan) {
		return nil, Errorf(-1, "sharded index: metadata.nwc_plan %q is not a hex SHA-256", x.Metadata.Plan)
	}
	n := x.Metadata.Parts
	if n < 1 || n > MaxParts {
		return nil, Errorf(-1, "sharded index: metadata.nwc_parts %d outside [1, %d]", n, MaxParts)
	}
	if len(x.WeightMap) == 0 {
		return nil, Errorf(-1, "sharded index: empty weight_map")
	}
	used := make([]bool, n+1)
	for t, f := range x.WeightMap {
		i, m, ok := ParsePartName(f)
		if !ok || m != n || filepath.Base(f) != f {
			return nil, Errorf(-1, "sharded index: tensor %q maps to %q, not a part of %d (%s)", t, f, n, PartName(1, n))
		}
		used[i] = true
	}
	for i := 1; i <= n; i++ {
		if !used[i] {
			return nil, Errorf(-1, "sharded index: part %s holds no tensor", PartName(i, n))
		}
	}
	return &x, nil
}

func validHash(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ValidPlanHash reports whether s is a MetaPlan value: 64 lower-case hex
// digits.
func ValidPlanHash(s string) bool { return validHash(s) }
