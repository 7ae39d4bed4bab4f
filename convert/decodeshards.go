package convert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/internal/atomicfile"
	"github.com/nwcodec/nwc/reader"
)

// tensors returns the tensors Decode writes, in order.
func (o *DecodeOptions) tensors(r *reader.Reader) ([]*reader.Tensor, error) {
	if o.Tensors == nil {
		return r.Tensors(), nil
	}
	ts := make([]*reader.Tensor, 0, len(o.Tensors))
	seen := make(map[string]bool, len(o.Tensors))
	for _, name := range o.Tensors {
		if seen[name] {
			return nil, fmt.Errorf("convert: tensor %q listed twice", name)
		}
		seen[name] = true
		t, err := r.Tensor(name)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	return ts, nil
}

// sourceIndex returns the number of the stored source header called name,
// or of the only one when name is "", or -1.
func sourceIndex(r *reader.Reader, name string) int {
	srcs := r.Index().Sources
	if name == "" {
		if len(srcs) == 1 {
			return 0
		}
		return -1
	}
	for i, s := range srcs {
		if s.Name == name {
			return i
		}
	}
	return -1
}

// sourceMetadata is the metadata of a decoded file: the .nwc's, without
// the keys a planned conversion added, which describe the .nwc and not
// the model.
func sourceMetadata(r *reader.Reader) map[string]string {
	md := r.Metadata()
	for _, k := range []string{format.MetaPlan, format.MetaPart, format.MetaSourceShards} {
		delete(md, k)
	}
	return md
}

// SourceShards returns the shard layout of the checkpoint a planned file
// was converted from (format.MetaSourceShards): each shard's file name and
// its tensors in order, shards sorted by name. It fails when the file has
// none, or when the layout does not name every tensor of r exactly once
// with safe file names.
func SourceShards(r *reader.Reader) (names []string, tensors map[string][]string, err error) {
	raw, ok := r.Metadata()[format.MetaSourceShards]
	if !ok {
		return nil, nil, ErrNoShardLayout
	}
	if err := json.Unmarshal([]byte(raw), &tensors); err != nil {
		return nil, nil, format.Errorf(-1, "metadata %s: %v", format.MetaSourceShards, err)
	}
	seen := map[string]bool{}
	for shard, ts := range tensors {
		if shard == "" || filepath.Base(shard) != shard || !filepath.IsLocal(shard) || !strings.HasSuffix(shard, ".safetensors") ||
			shard == IndexName {
			return nil, nil, format.Errorf(-1, "metadata %s: shard file name %q", format.MetaSourceShards, shard)
		}
		if len(ts) == 0 {
			return nil, nil, format.Errorf(-1, "metadata %s: shard %q holds no tensor", format.MetaSourceShards, shard)
		}
		for _, t := range ts {
			if seen[t] {
				return nil, nil, format.Errorf(-1, "metadata %s: tensor %q in two shards", format.MetaSourceShards, t)
			}
			if _, err := r.Tensor(t); err != nil {
				return nil, nil, format.Errorf(-1, "metadata %s: tensor %q is not in the file", format.MetaSourceShards, t)
			}
			seen[t] = true
		}
	}
	if len(seen) != len(r.Tensors()) {
		return nil, nil, format.Errorf(-1, "metadata %s: %d of the file's %d tensors", format.MetaSourceShards, len(seen), len(r.Tensors()))
	}
	names = slices.Sorted(maps.Keys(tensors))
	return names, tensors, nil
}

// ErrNoShardLayout reports a file that does not record its source's shard
// layout.
var ErrNoShardLayout = errors.New("convert: the file records no source shard layout (only files converted with a plan from a sharded checkpoint do)")

// IndexName is the index file of a sharded safetensors checkpoint.
const IndexName = "model.safetensors.index.json"

// DecodeShards decodes r into the directory dir (which must exist) in the
// shards of the checkpoint it was converted from (SourceShards): one
// safetensors file per source shard, holding its tensors in their source
// order, and model.safetensors.index.json. A shard whose stored header
// matches (a raw or lossless conversion, in the original dtypes) comes
// back byte for byte. Each file appears only when complete; opts.Tensors
// and opts.Source are set per shard, and opts.Progress counts over all
// shards.
func DecodeShards(ctx context.Context, r *reader.Reader, dir string, opts *DecodeOptions) error {
	var o DecodeOptions
	if opts != nil {
		o = *opts
	}
	names, layout, err := SourceShards(r)
	if err != nil {
		return err
	}
	target, err := targetDType(o.DType)
	if err != nil {
		return err
	}
	var tensorsDone, tensors int
	var weightsDone, weights uint64
	for _, t := range r.Tensors() {
		tensors++
		weights += t.NumElements()
	}
	type index struct {
		Metadata  map[string]uint64 `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	x := index{Metadata: map[string]uint64{"total_size": 0}, WeightMap: map[string]string{}}
	for _, shard := range names {
		so := o
		so.Tensors, so.Source = layout[shard], shard
		baseT, baseW := tensorsDone, weightsDone
		if o.Progress != nil {
			so.Progress = func(td, _ int, wd, _ uint64) {
				o.Progress(baseT+td, tensors, baseW+wd, weights)
			}
		}
		if err := Decode(ctx, r, filepath.Join(dir, shard), &so); err != nil {
			return fmt.Errorf("%s: %w", shard, err)
		}
		for _, name := range layout[shard] {
			t, _ := r.Tensor(name)
			dt := t.DType()
			if target != "" && dt.IsFloat() {
				dt = target
			}
			x.Metadata["total_size"] += t.NumElements() * uint64(dt.Size())
			x.WeightMap[name] = shard
			tensorsDone++
			weightsDone += t.NumElements()
		}
	}
	b, err := json.MarshalIndent(x, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, IndexName), func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
}
