"""What to change when a run does not fit (or is tight): settings in the order to try them, each applied on
top of the ones before and re-estimated."""
from __future__ import annotations

from typing import Any

from .. import shapes as S
from .result import Estimate


def suggestions(config, est: Estimate, shapes: S.Shapes, **kwargs) -> list[dict]:
    """Settings to change, in the order to try them, each applied on top of the ones before."""
    opts = dict(est.settings)
    base_kwargs = {k: v for k, v in kwargs.items() if k in ("gpus", "gpu_memory_gb", "device")}
    over = {k: v for k, v in kwargs.items() if k not in base_kwargs}
    method = config.method_spec
    steps: list[tuple[str, dict, Any]] = []
    if not opts["checkpointing"]:
        steps.append(("turn on training.gradient_checkpointing", {"checkpointing": True}, None))
    if opts["batch"] > 1:
        steps.append((f"training.batch_size 1 with gradient_accumulation_steps {opts['batch'] * opts['accum']}",
                      {"batch": 1, "accum": opts["batch"] * opts["accum"]}, None))
    world = est.gpus
    # Sharding keeps the method the user chose, so on several devices swapping to QLoRA is the last resort.
    swap_to_qlora = None
    if not opts["bits"]:
        if method.quantized_base:
            steps.append(("quantization.bits 4 (QLoRA-style nf4 base)", {"bits": 4}, None))
        elif method.kind == "full":
            swap_to_qlora = (f"method qlora (LoRA on a 4-bit base) instead of {method.title.lower()}",
                             {"bits": 4}, {"method.name": "qlora"})
            if world == 1:
                steps.append(swap_to_qlora)
                swap_to_qlora = None
    stage = opts["zero_stage"]
    if world > 1:
        for next_stage in (1, 2, 3):
            if (stage is None or stage < next_stage) and not (next_stage == 3 and (opts["bits"] or not method.zero3)):
                steps.append((f"distributed.zero_stage {next_stage}", {"zero_stage": next_stage}, None))
    logits = est.breakdown.get("activations (logits + loss)", 0.0)
    if not opts.get("fused_cross_entropy") and logits > 0.1 * est.training_bytes and \
            shapes.model_kind in ("causal_lm", "seq2seq"):
        steps.append(("training.fused_cross_entropy (the logits are never held whole; needs liger-kernel)",
                      {"fused_cross_entropy": True}, None))
    if stage is not None or world > 1:
        steps.append(("distributed.offload_optimizer cpu", {"offload_optimizer": "cpu",
                                                            "zero_stage": stage or 2}, None))
        if not opts["bits"] and method.zero3:
            steps.append(("distributed.offload_params cpu (ZeRO-3)", {"offload_params": "cpu", "zero_stage": 3,
                                                                       "offload_optimizer": "cpu"}, None))
    else:
        steps.append(("distributed.zero_stage 2 with offload_optimizer cpu (DeepSpeed on one GPU)",
                      {"zero_stage": 2, "offload_optimizer": "cpu"}, None))
    if swap_to_qlora:  # a 4-bit base cannot be ZeRO-3 sharded: back to stage 2, parameters on the GPU
        change, values, swap = swap_to_qlora
        steps.append((change, {**values, "zero_stage": 2, "offload_params": "none"}, swap))
    out = []
    applied: dict = dict(over)
    current = config
    for change, values, swap in steps:
        applied.update(values)
        if swap:
            try:
                current = current.update(swap)
            except Exception:
                continue
        try:
            from .core import estimate

            e = estimate(current, shapes=None if swap else shapes, suggest=False, **base_kwargs, **applied)
        except Exception:
            continue
        out.append({"change": change, "peak_gb": round(e.peak_gb, 2), "fits": e.fits})
        if e.fits:
            break
    return out
