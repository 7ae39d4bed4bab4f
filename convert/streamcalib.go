package convert

import (
	"context"
	"fmt"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/llama"
)

// streamHessians gives every lossy matrix of the calibration model the
// Hessian of its input on the original model, as llama.Calibrate would,
// but a layer at a time: each layer runs once over the calibration text,
// its groups' Hessians go to the spill, and the stream moves on, so
// memory holds one layer, its inputs over the text and one Hessian being
// summed instead of the whole model and every Hessian. It is the
// guidance of a conversion calibrated without sequential guidance on a
// model read lazily. The sums are those the allocation probe makes, so
// the column factors it leaves stay valid.
func (c *conversion) streamHessians(ctx context.Context, cal *Calibration) error {
	bm := cal.model()
	cfg := bm.Config()
	ws := llama.Windows(cal.Docs, cal.window(), 0)
	if len(ws) == 0 {
		return fmt.Errorf("convert: %w: no calibration tokens", codec.ErrOptions)
	}
	groups := map[string][]*item{}
	var total int
	var totalWeights uint64
	for _, it := range c.items {
		if !codec.Lossy(it.codec) || len(it.shape) < 2 || c.transposed(it) || hasOwnHessian(it) {
			continue
		}
		name, ok := bm.ModelName(it.info.Name)
		if !ok {
			continue
		}
		if key, ok := bm.HessianKey(name); ok {
			groups[key] = append(groups[key], it)
			total++
			totalWeights += it.numel
		}
	}
	var done int
	var weights uint64
	give := func(key string, mo *llama.Moments) error {
		its := groups[key]
		if len(its) == 0 {
			return nil
		}
		h := meanHessian(mo)
		for _, it := range its {
			if int(it.numel/it.shape[0]) == h.N {
				it.hessian, it.factors = h, nil
			}
		}
		if err := c.spillGuidance(its, h); err != nil {
			return err
		}
		for _, it := range its {
			done++
			weights += it.numel
			if c.o.Progress != nil {
				c.o.Progress(Progress{Phase: PhaseCalibrate, Pass: 1, Tensors: done, TotalTensors: total,
					Weights: weights, TotalWeights: totalWeights, Tensor: it.info.Name})
			}
		}
		return nil
	}
	run, err := llama.NewBlockRunner(cfg)
	if err != nil {
		return err
	}
	emb, err := bm.Tensor(llama.NameEmbedding)
	if err != nil {
		return err
	}
	xs, err := embed(ws, emb, cfg)
	if err != nil {
		return err
	}
	emb = nil
	for l := range cfg.NLayers {
		if err := ctx.Err(); err != nil {
			return err
		}
		blk, err := bm.Block(l)
		if err != nil {
			return err
		}
		keys := []string{llama.LayerName(l, "attention.wq"), llama.LayerName(l, "attention.wo"), llama.LayerName(l, "feed_forward.w1"), llama.LayerName(l, "feed_forward.w2")}
		in := newCapture(keys, 1)
		mos := map[string]*llama.Moments{}
		for i := range xs {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := run.Run(l, &blk, xs[i], in); err != nil {
				return err
			}
			for _, k := range keys {
				if mos[k] == nil {
					mos[k] = newSelfMoments(in.cols[k])
				}
				mos[k].AddSelf(in.x[k][0])
			}
		}
		for _, k := range keys {
			if err := give(k, mos[k]); err != nil {
				return err
			}
		}
	}
	// The classifier reads the final normalized stream: the output
	// matrix, or with tied embeddings the embedding.
	key := llama.NameOutput
	if cfg.TiedEmbeddings {
		key = llama.NameEmbedding
	}
	if len(groups[key]) == 0 {
		return nil
	}
	norm, err := bm.Tensor(llama.NameNorm)
	if err != nil {
		return err
	}
	mo := newSelfMoments(cfg.Dim)
	for _, x := range xs {
		llama.RMSNormRows(x, norm, cfg.NormEps)
		mo.AddSelf(x)
	}
	return give(key, mo)
}
