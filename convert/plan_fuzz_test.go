package convert_test

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nwcodec/nwc/convert"
	"github.com/nwcodec/nwc/format"
)

// seedPlan is a plan file as nwc plan writes one: two parts, a lossy
// matrix with a budget and a lossless vector.
const seedPlan = `{
 "schema": 1,
 "input": {"sha256": "ab", "files": [{"name": "model.safetensors", "size": 1000, "header_sha256": "cd"}]},
 "args": ["--codec=nwc", "--bits=4"],
 "codec": "nwc",
 "bits": 4,
 "parts": 2,
 "model_bits": 3.99,
 "tensors": [
  {"name": "a.weight", "part": 1, "dtype": "BF16", "codec": "nwc", "elements": 4096, "step": 0.01, "target": 2048, "tolerance": 5, "slope": -4096},
  {"name": "b.norm", "part": 2, "shard": "model-00002-of-00002.safetensors", "dtype": "F32", "codec": "lossless", "elements": 64}
 ]
}
`

// FuzzParsePlan checks that ParsePlan refuses with ErrPlan or returns a
// plan that keeps its promises: 1 to format.MaxParts parts, each holding
// a contiguous non-empty run of tensors, finite non-negative steps and
// budgets, and the same plan after Marshal and ParsePlan again.
func FuzzParsePlan(f *testing.F) {
	f.Add([]byte(seedPlan))
	f.Add([]byte(`{"schema": 1, "parts": 1, "tensors": [{"name": "x", "part": 1}]}`))
	f.Add([]byte(`{"schema": 1, "parts": 2, "tensors": [{"name": "x", "part": 1}, {"name": "y", "part": 3}]}`))
	f.Add([]byte(`{"schema": 1, "parts": 1, "tensors": [{"name": "x", "part": 1, "step": -1}]}`))
	f.Add([]byte(`{"schema": 2}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := convert.ParsePlan(b)
		if err != nil {
			if !errors.Is(err, convert.ErrPlan) {
				t.Fatalf("error %v does not wrap ErrPlan", err)
			}
			return
		}
		if p.Parts < 1 || p.Parts > format.MaxParts {
			t.Fatalf("accepted %d parts", p.Parts)
		}
		n := 0
		for i := 1; i <= p.Parts; i++ {
			names := p.PartTensors(i)
			if len(names) == 0 {
				t.Fatalf("part %d of %d is empty", i, p.Parts)
			}
			for _, name := range names {
				if p.Tensors[n].Name != name {
					t.Fatalf("part %d: tensor %q out of order (want %q)", i, name, p.Tensors[n].Name)
				}
				n++
			}
		}
		if n != len(p.Tensors) {
			t.Fatalf("parts hold %d of %d tensors", n, len(p.Tensors))
		}
		for _, pt := range p.Tensors {
			if !(pt.Step >= 0 && pt.Target >= 0 && pt.Tolerance >= 0 && pt.Slope <= 0) {
				t.Fatalf("accepted tensor %+v", pt)
			}
		}
		if x := p.ShardIndex(false); len(x.WeightMap) > len(p.Tensors) || x.Metadata.Parts != p.Parts {
			t.Fatalf("shard index of %d parts maps %d names for %d tensors", x.Metadata.Parts, len(x.WeightMap), len(p.Tensors))
		}
		out, err := p.Marshal()
		if err != nil {
			t.Fatalf("Marshal of an accepted plan: %v", err)
		}
		q, err := convert.ParsePlan(out)
		if err != nil {
			t.Fatalf("ParsePlan of its own Marshal: %v\n%s", err, out)
		}
		if d := cmp.Diff(p, q, cmpopts.IgnoreUnexported(convert.Plan{}), cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("plan changed through Marshal (-before +after):\n%s", d)
		}
		if p.Hash() != q.Hash() {
			t.Fatalf("hash %s after Marshal, %s from ParsePlan of the same bytes", p.Hash(), q.Hash())
		}
	})
}
