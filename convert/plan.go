package convert

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"runtime/debug"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/safetensors"
)

// Plans: converting one checkpoint on many machines. MakePlan takes every
// decision that involves more than one tensor — which tensors are lossy,
// whether the codec's blob is stored, bit allocation, the quantizer step
// of every matrix from rate control — and records it with the tensor
// list, split into parts of about equal weight count. ToNWCPlanned then
// encodes one part (or the whole checkpoint) from the plan alone: each
// tensor's encoding depends on its own bytes and its entry in the plan,
// so a part can be made or redone on any machine, in any order, and the
// parts copied into one file (Merge) are byte for byte the file one
// process writes from the same plan.
//
// Rate control without whole-file feedback. A single-process conversion
// with the rate model corrects each matrix's step from the sizes the
// matrices before it actually took; across parts that information does
// not exist. A plan instead fixes every matrix's step at the rate model's
// solution and gives it a byte budget, the model's prediction of its size
// at that step. A matrix that misses its budget by more than
// missTolerance of the file (or a --tensor-bits matrix by more than
// budgetTolerance of its budget) is encoded again at secant steps (encodeNear),
// as in one process, so each tensor's error stays small and independent
// of the others: the file lands where the model predicts, within the
// model's own error (0.3–0.75 % measured without feedback, see the README).
// Small checkpoints plan with the exact search, whose dry runs encode the
// whole file: there the plan's steps are exactly those one process uses.

// PlanSchema is the version of the plan file format MakePlan writes;
// ParsePlan refuses any other.
const PlanSchema = 1

// ErrPlan reports a plan that cannot be used: another schema version, made
// from other input files or options, or a part out of range.
var ErrPlan = errors.New("convert: plan mismatch")

// A Plan is what MakePlan decides, as written to plan.json.
type Plan struct {
	Schema int `json:"schema"`
	// Input identifies the checkpoint the plan was made from.
	Input PlanInput `json:"input"`
	// Args are the command-line options the plan was made with, recorded
	// by tools (nwc plan) so that every part is converted with the same
	// Options; this package stores them and does not read them.
	Args  []string `json:"args,omitempty"`
	Codec string   `json:"codec"`
	Bits  float64  `json:"bits,omitempty"`
	// Parts is the number of parts.
	Parts int `json:"parts"`
	// Build identifies the nwc build that made the plan (module version
	// and VCS revision, when the binary records them): encoders of
	// another build may code a tensor differently, so parts are made by
	// the same build.
	Build string `json:"build,omitempty"`
	// ModelBits is the rate model's prediction of the file's bits per
	// weight (0 when the plan used the exact search or no rate control).
	ModelBits float64 `json:"model_bits,omitempty"`
	// Tensors is every tensor in the order of the file.
	Tensors []PlanTensor `json:"tensors"`

	hash string // of the plan file's bytes (Hash)
}

// PlanInput identifies a checkpoint by its files' names, sizes and header
// digests: cheap to compute on every machine, and any change to a header
// (tensors, shapes, dtypes, offsets, metadata) changes it.
type PlanInput struct {
	SHA256 string     `json:"sha256"` // over Files, see inputOf
	Files  []PlanFile `json:"files"`
}

// A PlanFile is one input file.
type PlanFile struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
	// HeaderSHA256 is the SHA-256 of the safetensors header (of the whole
	// file, for a sharded checkpoint's index).
	HeaderSHA256 string `json:"header_sha256"`
}

// A PlanTensor is one tensor's entry.
type PlanTensor struct {
	Name string `json:"name"`
	// Part is the part (1-based) whose file holds the tensor.
	Part int `json:"part"`
	// Shard is the source file holding it, for a sharded checkpoint.
	Shard    string       `json:"shard,omitempty"`
	DType    format.DType `json:"dtype"`
	Codec    string       `json:"codec"`
	Elements uint64       `json:"elements"`
	// Step is the quantizer step it is encoded at (0: the codec has none).
	Step float64 `json:"step,omitempty"`
	// Target, if positive, is its byte budget: an encoding at Step that
	// misses it by more than Tolerance bytes is redone once at the step a
	// secant with Slope (bytes per unit of log2 step, negative) gives,
	// and the closer of the two kept.
	Target    float64 `json:"target,omitempty"`
	Tolerance float64 `json:"tolerance,omitempty"`
	Slope     float64 `json:"slope,omitempty"`
}

// Hash returns the hex SHA-256 of the plan file's bytes, which every file
// converted from it records (format.MetaPlan).
func (p *Plan) Hash() string { return p.hash }

// Marshal returns the plan file's bytes (indented JSON) and sets Hash.
func (p *Plan) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(p, "", " ")
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	sum := sha256.Sum256(b)
	p.hash = hex.EncodeToString(sum[:])
	return b, nil
}

// ParsePlan parses a plan file and checks it: the schema version, a part
// count in [1, format.MaxParts], and tensors whose parts are contiguous,
// in order and each non-empty. Errors wrap ErrPlan.
func ParsePlan(b []byte) (*Plan, error) {
	var p Plan
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrPlan, err)
	}
	if p.Schema != PlanSchema {
		return nil, fmt.Errorf("%w: plan schema %d, this nwc reads %d", ErrPlan, p.Schema, PlanSchema)
	}
	if p.Parts < 1 || p.Parts > format.MaxParts || len(p.Tensors) < p.Parts {
		return nil, fmt.Errorf("%w: %d parts for %d tensors", ErrPlan, p.Parts, len(p.Tensors))
	}
	prev := 1
	for i, t := range p.Tensors {
		if t.Part != prev && t.Part != prev+1 || i == 0 && t.Part != 1 {
			return nil, fmt.Errorf("%w: tensor %q in part %d after part %d", ErrPlan, t.Name, t.Part, prev)
		}
		prev = t.Part
		for _, v := range []float64{t.Step, t.Target, t.Tolerance, t.Slope} {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return nil, fmt.Errorf("%w: tensor %q has step or budget %v", ErrPlan, t.Name, v)
			}
		}
		if t.Step < 0 || t.Target < 0 || t.Tolerance < 0 || t.Slope > 0 {
			return nil, fmt.Errorf("%w: tensor %q has a negative step or budget or a rising rate", ErrPlan, t.Name)
		}
	}
	if prev != p.Parts {
		return nil, fmt.Errorf("%w: tensors in %d parts, plan says %d", ErrPlan, prev, p.Parts)
	}
	sum := sha256.Sum256(b)
	p.hash = hex.EncodeToString(sum[:])
	return &p, nil
}

// PartTensors returns the names of the tensors of part i (1-based).
func (p *Plan) PartTensors(i int) []string {
	var out []string
	for _, t := range p.Tensors {
		if t.Part == i {
			out = append(out, t.Name)
		}
	}
	return out
}

// ShardIndex returns the index file of the sharded .nwc the plan's parts
// make (the same for every part, so each part's process may write it);
// plainIndex records Options.Writer.PlainIndex for Merge.
func (p *Plan) ShardIndex(plainIndex bool) *format.ShardIndex {
	x := &format.ShardIndex{WeightMap: make(map[string]string, len(p.Tensors))}
	x.Metadata.Plan = p.Hash()
	x.Metadata.Parts = p.Parts
	x.Metadata.IndexUncompressed = plainIndex
	for _, t := range p.Tensors {
		x.WeightMap[t.Name] = format.PartName(t.Part, p.Parts)
		if t.DType.Valid() {
			x.Metadata.TotalSize += t.Elements * uint64(t.DType.Size())
		}
	}
	return x
}

// inputOf identifies src (PlanInput). singleName is the base name recorded
// for a single-file source.
func inputOf(src safetensors.Source, singleName string) (PlanInput, error) {
	var in PlanInput
	add := func(name string, size int64, header []byte) {
		sum := sha256.Sum256(header)
		in.Files = append(in.Files, PlanFile{Name: name, Size: size, HeaderSHA256: hex.EncodeToString(sum[:])})
	}
	switch s := src.(type) {
	case *safetensors.ReadCloser:
		if singleName == "" {
			singleName = "model.safetensors"
		}
		add(filepath.Base(singleName), s.Size(), s.RawHeader())
	case *safetensors.Sharded:
		raw := s.RawIndex()
		add("index", int64(len(raw)), raw)
		for _, name := range s.Shards() {
			f, ok := s.Shard(name)
			if !ok {
				return in, fmt.Errorf("convert: shard %q vanished", name)
			}
			add(name, f.Size(), f.RawHeader())
		}
	default:
		return in, fmt.Errorf("%w: a plan needs a safetensors file or sharded checkpoint, not %T", codec.ErrOptions, src)
	}
	h := sha256.New()
	for _, f := range in.Files {
		fmt.Fprintf(h, "%s\x00%d\x00%s\n", f.Name, f.Size, f.HeaderSHA256)
	}
	in.SHA256 = hex.EncodeToString(h.Sum(nil))
	return in, nil
}

// planHashPlaceholder stands for the plan's hash in the metadata while the
// plan is made (the hash depends on the plan): hex digits like a real
// hash, so the index compresses as the final file's does.
var planHashPlaceholder = func() string {
	s := sha256.Sum256([]byte("nwc plan placeholder"))
	return hex.EncodeToString(s[:])
}()

// MakePlan decides how src is converted with opts and splits its tensors
// into parts contiguous parts of about equal weight count (opts.Jobs and
// opts.Progress apply to the rate control it runs). Sequential guidance,
// measured bit allocation and layer Hessians cannot be planned: they run
// the model, which needs every tensor in one process.
func MakePlan(ctx context.Context, src safetensors.Source, parts int, opts *Options) (*Plan, error) {
	if opts != nil && opts.Guidance != nil && (opts.Guidance.Sequential || opts.Guidance.Probe != nil || opts.Guidance.LayerHessians) {
		return nil, fmt.Errorf("convert: %w: sequential guidance, measured allocation and layer Hessians cannot be planned (they need every tensor in one process)", codec.ErrOptions)
	}
	in, err := inputOf(src, optsSourceName(opts))
	if err != nil {
		return nil, err
	}
	c, err := newConversion(ctx, src, opts)
	if err != nil {
		return nil, err
	}
	if parts < 1 || parts > format.MaxParts || parts > len(c.items) {
		return nil, fmt.Errorf("convert: %w: %d parts for %d tensors", codec.ErrOptions, parts, len(c.items))
	}
	c.planMeta = c.planMetadata(planHashPlaceholder, 0, 0)
	if err := c.controlRate(ctx); err != nil {
		return nil, err
	}
	p := &Plan{Schema: PlanSchema, Input: in, Codec: c.o.Codec, Bits: c.o.Bits, Parts: parts, ModelBits: c.modelBits, Build: buildID()}
	part := splitParts(c.items, parts)
	for k, it := range c.items {
		pt := c.plannedTensor(k)
		pt.Part = part[k]
		if s, ok := src.(*safetensors.Sharded); ok {
			pt.Shard, _ = s.ShardOf(it.info.Name)
		}
		p.Tensors = append(p.Tensors, pt)
	}
	if _, err := p.Marshal(); err != nil {
		return nil, err
	}
	return p, nil
}

// buildID identifies this build of nwc: the main module's path and
// version and the VCS revision, marked when the tree was modified.
func buildID() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	id := bi.Main.Path + "@" + bi.Main.Version
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision":
			id += " " + s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			id += "+modified"
		}
	}
	return id
}

func optsSourceName(o *Options) string {
	if o == nil {
		return ""
	}
	return o.SourceName
}

// plannedTensor is tensor k's entry after rate control: its step, and
// with the rate model its budget, as the single-process final pass would
// start from before feedback.
func (c *conversion) plannedTensor(k int) PlanTensor {
	it := c.items[k]
	pt := PlanTensor{Name: it.info.Name, DType: it.info.DType, Codec: it.codec, Elements: it.numel, Step: it.step}
	if !codec.Lossy(it.codec) {
		pt.Step = 0
	}
	if c.rate == nil || !stepped(it) {
		return pt
	}
	x := c.rate.planned[k]
	pt.Step = math.Exp2(x)
	if it.fixed {
		pt.Target = max(it.bits*float64(it.numel)/8, 1)
		pt.Tolerance = budgetTolerance * pt.Target
	} else {
		pt.Target = it.model.at(x)
		pt.Tolerance = missTolerance * c.rate.target
	}
	const h = 0.05
	pt.Slope = min((it.model.at(x+h)-it.model.at(x-h))/(2*h), -it.model.slope)
	return pt
}

// splitParts assigns each item a part in [1, n]: contiguous, in order,
// each part non-empty, cut where the running weight count crosses a
// multiple of 1/n of the total (a tensor goes where its middle falls).
func splitParts(items []*item, n int) []int {
	var total float64
	for _, it := range items {
		total += float64(max(it.numel, 1))
	}
	out := make([]int, len(items))
	var before float64
	prev := 1
	for k, it := range items {
		w := float64(max(it.numel, 1))
		p := 1 + int(float64(n)*(before+w/2)/total)
		p = min(p, prev+1, n)                // no part skipped
		p = max(p, prev, n-(len(items)-1-k)) // enough tensors left for the rest
		if k == 0 {
			p = 1
		}
		out[k] = p
		prev = p
		before += w
	}
	return out
}

// planMetadata is the metadata a planned conversion adds to the source's:
// the plan's hash, the part (when part > 0) and the source's shard layout.
func (c *conversion) planMetadata(hash string, part, parts int) map[string]string {
	md := map[string]string{format.MetaPlan: hash}
	if part > 0 {
		md[format.MetaPart] = format.FormatPart(part, parts)
	}
	if s, ok := c.src.(*safetensors.Sharded); ok {
		layout := map[string][]string{}
		for _, t := range s.Tensors() {
			if sh, ok := s.ShardOf(t.Name); ok {
				layout[sh] = append(layout[sh], t.Name)
			}
		}
		b, err := json.Marshal(layout)
		if err == nil {
			md[format.MetaSourceShards] = string(b)
		}
	}
	return md
}
