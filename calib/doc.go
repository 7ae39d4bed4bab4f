// Package calib holds calibration data for output-guided compression: the
// second moments (Hessians) of every linear layer's inputs, stored in a
// plain safetensors file, and the importance levels derived from them.
//
// A Hessian here is H = E[x xᵀ], the mean over calibration tokens of the
// outer product of a linear layer's input x with itself, for a weight of
// shape [out, in] an in×in matrix. LDLQ (package ldlq) uses it to let later
// input columns absorb the error of earlier ones; its diagonal ranks the
// input columns by how much output error they cause (Levels).
//
// # Hessian file schema (version 1)
//
// The file is an ordinary safetensors file, so a model that cannot run in
// Go can be calibrated elsewhere, for instance with PyTorch forward hooks,
// and brought to `nwc convert --hessians`:
//
//   - One tensor per distinct Hessian, named after a weight that reads the
//     input with ".hessian" appended, e.g.
//     "layers.0.attention.wq.weight.hessian", of dtype F32 or F64 and shape
//     [in, in], holding E[x xᵀ] (the sum of x xᵀ divided by the token
//     count, not the sum). It must be finite and symmetric (within 1e-4 of
//     sqrt(H_ii·H_jj), which float32 matrix products meet), have a
//     non-negative diagonal with a positive trace, and satisfy
//     H_ij² ≤ H_ii·H_jj (within 1e-3), which every second moment does. A
//     zero diagonal entry marks an input that was zero on every token
//     (LDLQ treats it as GPTQ does).
//   - Metadata "tokens": the number of calibration tokens, a positive
//     decimal integer. "tokens.W", for a stored weight W, overrides it for
//     W's Hessian.
//   - Metadata "alias.W" = "V": weight W reads the same input as the stored
//     weight V and shares its Hessian. A layer's key and value projections
//     alias its query projection, the up projection aliases the gate
//     projection. V must be stored; W must not be.
//   - Metadata "hessians_version", if present, must be "1". Other
//     metadata keys are kept in Set.Metadata and otherwise ignored.
//
// Weight names are the checkpoint's own: nwc calibrate writes the names of
// the checkpoint it ran, llama2.c ones ("layers.0.attention.wq.weight") or
// Hugging Face ones ("model.layers.0.self_attn.q_proj.weight"). A PyTorch producer might look like this:
//
//	sums, n = {}, 0
//	def hook(name):
//	    def f(mod, inp, out):
//	        x = inp[0].reshape(-1, inp[0].shape[-1]).double()
//	        sums[name] = sums.get(name, 0) + x.T @ x
//	    return f
//	for name, mod in model.named_modules():
//	    if name.endswith(("q_proj", "o_proj", "gate_proj", "down_proj")):
//	        mod.register_forward_hook(hook(name + ".weight"))
//	# run the calibration batches, adding their token count to n, then:
//	tensors = {k + ".hessian": (v / n).float().contiguous() for k, v in sums.items()}
//	meta = {"tokens": str(n)}
//	for k in list(sums):
//	    if k.endswith("q_proj.weight"):
//	        for o in ("k_proj", "v_proj"):
//	            meta["alias." + k.replace("q_proj", o)] = k
//	    if k.endswith("gate_proj.weight"):
//	        meta["alias." + k.replace("gate_proj", "up_proj")] = k
//	safetensors.torch.save_file(tensors, "hessians.safetensors", metadata=meta)
package calib
