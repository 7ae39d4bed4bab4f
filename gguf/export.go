package gguf

import (
	"context"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"

	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/internal/atomicfile"
	"github.com/nwcodec/nwc/internal/ordered"
	"github.com/nwcodec/nwc/llama"
	"github.com/nwcodec/nwc/reader"
	"github.com/nwcodec/nwc/tokenizer"
)

// ExportOptions configure Export. The zero value keeps each tensor's
// dtype, aligns to 32 bytes and writes no tokenizer.
type ExportOptions struct {
	// DType is "" or "orig" to keep each matrix's dtype (F64 becomes F32),
	// or "f32", "f16" or "bf16". Tensors of rank < 2 (the norms) are F32
	// whatever it says, as llama.cpp's own converter writes them.
	DType string
	// Alignment of tensor data, a power of two; 0 means 32. It is written
	// as general.alignment.
	Alignment int
	// Config is the model's configuration as metadata keys of
	// llama.ConfigFromMetadata (llama2.c's or Hugging Face's
	// config.json, as llama.ConfigFromJSON returns it); its keys override
	// the .nwc file's metadata, which is enough alone for files converted
	// from llama2.c-style safetensors.
	Config map[string]string
	// Tokenizer, if set, is written as tokenizer.ggml.* (a llama2.c
	// tokenizer: SentencePiece pieces and scores).
	Tokenizer *tokenizer.Tokenizer
	// Name, if set, is written as general.name.
	Name string
	// Jobs is the number of chunk groups decoded at once (default
	// GOMAXPROCS).
	Jobs int
	// Progress, if set, is called after each chunk group is written, from
	// Export's goroutine, with the tensors and weights written so far and
	// their totals.
	Progress func(tensorsDone, tensors int, weightsDone, weights uint64)
}

// A planned tensor is one source tensor and where it goes.
type planned struct {
	t     *reader.Tensor
	info  TensorInfo
	dt    format.DType // what the reader decodes it to
	order rowOrder
}

// Export writes the Llama model of r as a GGUF file at out: llama.cpp's
// tensor names, from llama2.c or Hugging Face names (Hugging Face query
// and key rows put back in the interleaved rotary order llama.cpp
// expects), general.architecture "llama" and the llama.* hyperparameters
// of the model's configuration (see ExportOptions.Config). Tensors are
// decoded one chunk group at a time on opts.Jobs goroutines, each written
// at its place, so memory holds a few groups, never a whole tensor. The
// file appears at out only when complete.
//
// A tensor that is not part of a Llama model, or a configuration that
// does not match the tensors, fails with an error wrapping
// format.ErrUnsupported or ErrInvalid.
func Export(ctx context.Context, r *reader.Reader, out string, opts *ExportOptions) error {
	var o ExportOptions
	if opts != nil {
		o = *opts
	}
	if o.Jobs <= 0 {
		o.Jobs = runtime.GOMAXPROCS(0)
	}
	if o.Alignment == 0 {
		o.Alignment = DefaultAlignment
	}
	if o.Alignment < 0 || o.Alignment > 1<<30 {
		return fmt.Errorf("%w: alignment %d", ErrInvalid, o.Alignment)
	}
	md := r.Metadata()
	if md == nil {
		md = map[string]string{}
	}
	maps.Copy(md, o.Config)
	cfg, err := llama.ConfigFromMetadata(md)
	if err != nil {
		return fmt.Errorf("gguf: the model's configuration (the .nwc metadata and ExportOptions.Config): %w", err)
	}
	plan, err := planTensors(r, cfg, o.DType)
	if err != nil {
		return err
	}
	kvs := []KV{
		{"general.architecture", "llama"},
		{"general.alignment", uint32(o.Alignment)},
		{"general.file_type", fileType(plan)},
	}
	if o.Name != "" {
		kvs = append(kvs, KV{"general.name", o.Name})
	}
	kvs = append(kvs, llamaMetadata(cfg)...)
	if o.Tokenizer != nil {
		if o.Tokenizer.VocabSize() != cfg.VocabSize {
			return fmt.Errorf("%w: tokenizer of %d tokens for a model of %d", ErrInvalid, o.Tokenizer.VocabSize(), cfg.VocabSize)
		}
		kvs = append(kvs, tokenizerMetadata(o.Tokenizer)...)
	}
	infos := make([]TensorInfo, len(plan))
	for i, p := range plan {
		infos[i] = p.info
	}
	hdr, lay, err := Header(kvs, infos)
	if err != nil {
		return err
	}

	f, err := atomicfile.Create(out)
	if err != nil {
		return err
	}
	defer f.Abort()
	// The padding between tensors is the zeros of the extended file.
	if err := f.Truncate(lay.Size); err != nil {
		return err
	}
	if _, err := f.WriteAt(hdr, 0); err != nil {
		return err
	}
	var total, done uint64
	for _, p := range plan {
		total += p.t.NumElements()
	}
	for k, p := range plan {
		base := lay.DataOffset + lay.Offsets[k]
		err := writeTensor(ctx, p, cfg, o.Jobs, func(b []byte, off int64) error {
			_, err := f.WriteAt(b, base+off)
			return err
		}, func(n uint64) {
			done += n
			if o.Progress != nil {
				o.Progress(k, len(plan), done, total)
			}
		})
		if err != nil {
			return fmt.Errorf("gguf: tensor %q: %w", p.t.Name(), err)
		}
	}
	if o.Progress != nil {
		o.Progress(len(plan), len(plan), done, total)
	}
	return f.Commit()
}

// planTensors names, types and checks every tensor of r.
func planTensors(r *reader.Reader, cfg llama.Config, dtype string) ([]planned, error) {
	var want format.DType
	switch dtype {
	case "", "orig":
	case "f32", "F32":
		want = format.F32
	case "f16", "F16":
		want = format.F16
	case "bf16", "BF16":
		want = format.BF16
	default:
		return nil, fmt.Errorf("%w: output dtype %q (want orig, f32, f16 or bf16)", ErrInvalid, dtype)
	}
	var plan []planned
	for _, t := range r.Tensors() {
		name, order, ok := llamaName(t.Name())
		if !ok {
			return nil, fmt.Errorf("gguf: %w: tensor %q is not one of a Llama model", format.ErrUnsupported, t.Name())
		}
		if name == "" {
			continue
		}
		shape := t.Shape()
		if len(shape) == 0 || len(shape) > 4 {
			return nil, fmt.Errorf("gguf: %w: tensor %q of rank %d", format.ErrUnsupported, t.Name(), len(shape))
		}
		dt := t.DType()
		switch {
		case !dt.IsFloat():
			return nil, fmt.Errorf("gguf: %w: tensor %q of dtype %s", format.ErrUnsupported, t.Name(), dt)
		case len(shape) < 2:
			dt = format.F32
		case want != "":
			dt = want
		case dt != format.F32 && dt != format.F16 && dt != format.BF16:
			dt = format.F32
		}
		typ := map[format.DType]Type{format.F32: F32, format.F16: F16, format.BF16: BF16}[dt]
		dims := slices.Clone(shape)
		slices.Reverse(dims)
		p := planned{t: t, info: TensorInfo{Name: name, Dims: dims, Type: typ}, dt: dt, order: order}
		if err := checkShape(p, shape, cfg); err != nil {
			return nil, err
		}
		plan = append(plan, p)
	}
	return plan, nil
}

// checkShape refuses tensors whose shape contradicts the configuration
// llama.cpp will read: it would refuse the file, or compute garbage from
// rows reordered by the wrong head size.
func checkShape(p planned, shape []uint64, cfg llama.Config) error {
	is := func(dims ...int) bool {
		if len(shape) != len(dims) {
			return false
		}
		for i, d := range dims {
			if shape[i] != uint64(d) {
				return false
			}
		}
		return true
	}
	var ok bool
	switch p.info.Name {
	case "token_embd.weight", "output.weight":
		ok = is(cfg.VocabSize, cfg.Dim)
	case "output_norm.weight":
		ok = is(cfg.Dim)
	default:
		switch {
		case strings.HasSuffix(p.info.Name, ".attn_q.weight"):
			ok = is(cfg.NHeads*cfg.HeadDim(), cfg.Dim)
		case strings.HasSuffix(p.info.Name, ".attn_k.weight"), strings.HasSuffix(p.info.Name, ".attn_v.weight"):
			ok = is(cfg.NKVHeads*cfg.HeadDim(), cfg.Dim)
		default:
			ok = true // llama.cpp checks the others itself
		}
	}
	if !ok {
		return fmt.Errorf("%w: tensor %q of shape %v does not fit the configuration (dim %d, %d heads, %d kv heads, vocabulary %d)",
			ErrInvalid, p.t.Name(), shape, cfg.Dim, cfg.NHeads, cfg.NKVHeads, cfg.VocabSize)
	}
	return nil
}

// fileType returns general.file_type (llama.cpp's llama_ftype) for the
// type holding most matrix weights.
func fileType(plan []planned) uint32 {
	count := map[Type]uint64{}
	for _, p := range plan {
		if len(p.info.Dims) >= 2 {
			count[p.info.Type] += p.t.NumElements()
		}
	}
	best := F32
	for _, t := range []Type{F16, BF16} {
		if count[t] > count[best] {
			best = t
		}
	}
	return map[Type]uint32{F32: 0, F16: 1, BF16: 32}[best]
}

// writeTensor decodes p's chunk groups on jobs goroutines and passes each
// to write with its offset in the tensor's data, row by row where rows are
// reordered; then, in group order, it calls done with the group's number
// of elements.
func writeTensor(ctx context.Context, p planned, cfg llama.Config, jobs int,
	write func(b []byte, off int64) error, done func(n uint64)) error {
	t := p.t
	esize := int64(p.dt.Size())
	cols := uint64(1)
	if len(p.info.Dims) >= 2 {
		cols = p.info.Dims[0]
	}
	elems := func(i int64) (uint64, uint64) { return t.GroupElements(int(i)) }
	size := func(i int64) int {
		e0, e1 := elems(i)
		return int(int64(e1-e0) * esize)
	}
	fill := func(i int64, buf []byte) error {
		e0, e1 := elems(i)
		if err := t.DecodeGroupInto(ctx, int(i), buf, p.dt); err != nil {
			return err
		}
		if p.order == sameRows {
			return write(buf, int64(e0)*esize)
		}
		for e := e0; e < e1; {
			row := e / cols
			end := min(e1, (row+1)*cols)
			dst := uint64(interleaveRows(int(row), cfg.HeadDim()))*cols + e%cols
			if err := write(buf[int64(e-e0)*esize:int64(end-e0)*esize], int64(dst)*esize); err != nil {
				return err
			}
			e = end
		}
		return nil
	}
	return ordered.Run(ctx, int64(t.NumGroups()), jobs, size, fill, func(i int64, _ []byte) error {
		e0, e1 := elems(i)
		done(e1 - e0)
		return nil
	})
}
