"""Peaks outside the training step: loading the model, and generating during evaluation.

* **loading**: the weights in their final form, plus what is alive while they get there. A 4/8-bit base
  is read in 16-bit and quantized tensor by tensor (the largest linear weight in 16-bit next to its
  quantized copy); ``prepare_model_for_kbit_training`` then casts each unquantized layer to fp32, the
  largest (the embedding) alive in both dtypes for a moment.
* **generation at evaluation** (sample prompts of the causal tasks, translation's predict-with-generate):
  the model states that outlive a step (weights, adapters, optimizer states; gradients are freed), the
  KV cache for prompt plus new tokens (times beams), and the largest transient of a no-grad forward over
  the prompt (the MLP's intermediate; logits for the last position only).
"""
from __future__ import annotations

from .. import shapes as S
from .devices import CUDA_CONTEXT_MB, GPU_FRAGMENTATION, MB
from .states import quantized_module

_LASTING = ("base weights", "trainable weights", "fp32 master weights", "optimizer states", "ZeRO-3 gathered")


def loading_peak(shapes: S.Shapes, opts: dict, breakdown: dict, w_bytes: int) -> float:
    weights = sum(v for k, v in breakdown.items() if k.startswith(("base weights", "trainable weights")))
    transient = 0.0
    if opts["bits"] and opts["zero_stage"] != 3:
        largest_q = max((m.weight_numel for m in shapes.modules if quantized_module(m, opts["bits"])), default=0)
        largest_other = max((m.numel for m in shapes.modules if not quantized_module(m, opts["bits"])), default=0)
        transient = max(2 * largest_q, 2 * largest_other)
    return (weights + transient) * GPU_FRAGMENTATION + CUDA_CONTEXT_MB * MB


def generation_settings(config) -> tuple[int, int, int]:
    """(sequences generated together, new tokens, beams) at evaluation, or zeros when the task generates none."""
    opts = config.task_options
    prompts = list(getattr(opts, "sample_prompts", None) or [])
    new = int(getattr(opts, "max_new_tokens", 0) or 0)
    beams = int(getattr(opts, "num_beams", 1) or 1)
    if config.task_spec.model_kind == "seq2seq" and new:  # predict_with_generate over the eval batch
        t = config.training
        return t.eval_batch_size or t.batch_size, new, beams
    if prompts and new:  # one prompt at a time
        return 1, new, beams
    return 0, 0, 0


def generation_peak(config, shapes: S.Shapes, opts: dict, breakdown: dict, act_bytes: int) -> float:
    batch, new, beams = generation_settings(config)
    if not batch:
        return 0.0
    seqs = batch * beams
    tokens = opts["seq"] + new
    kv = 2 * shapes.total_layers * shapes.kv_heads * shapes.head_dim * tokens * seqs * act_bytes
    forward = seqs * opts["seq"] * (3 * shapes.intermediate + 2 * shapes.hidden) * act_bytes
    logits = seqs * shapes.vocab * 4 * 2
    lasting = sum(v for k, v in breakdown.items() if k.startswith(_LASTING))
    return (lasting + kv + forward + logits) * GPU_FRAGMENTATION + CUDA_CONTEXT_MB * MB
