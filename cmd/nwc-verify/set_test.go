package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/writer"
)

// writeOnePartSet copies the .nwc file src into dir as part 1 of a set of
// one made from plan, with the set's index.
func writeOnePartSet(t *testing.T, dir, src, plan string) {
	t.Helper()
	r, err := reader.Open(src, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f, err := writer.Create(filepath.Join(dir, format.PartName(1, 1)), &writer.Options{Packed: r.Alignment() == 1})
	if err != nil {
		t.Fatal(err)
	}
	md := r.Metadata()
	if md == nil {
		md = map[string]string{}
	}
	md[format.MetaPlan], md[format.MetaPart] = plan, format.FormatPart(1, 1)
	f.SetMetadata(md)
	x := &format.ShardIndex{WeightMap: map[string]string{}}
	x.Metadata.Plan, x.Metadata.Parts = plan, 1
	for _, tn := range r.Tensors() {
		enc, err := tn.Encoded(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := f.WriteEncoded(tn.Name(), tn.DType(), tn.Shape(), tn.Codec(), enc); err != nil {
			t.Fatal(err)
		}
		x.WeightMap[tn.Name()] = format.PartName(1, 1)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := x.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, format.ShardIndexName), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// rewriteIndexPlan sets the plan hash of dir's index.
func rewriteIndexPlan(t *testing.T, dir, plan string) {
	t.Helper()
	p := filepath.Join(dir, format.ShardIndexName)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	x, err := format.ParseShardIndex(b)
	if err != nil {
		t.Fatal(err)
	}
	x.Metadata.Plan = plan
	if b, err = x.Marshal(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, bytes.TrimSpace(b), 0o644); err != nil {
		t.Fatal(err)
	}
}
