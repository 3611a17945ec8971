"""Adapters that re-allocate their budget during training: AdaLoRA and AdaMSS.

Both need a call after every optimizer step; ``apply`` sets ``ctx.on_step``
and the engine calls it.
"""
from __future__ import annotations

from ._base import AdapterOptions, MethodSpec, Trades, peft_apply
from ._memory import MemoryModel, low_rank
from ..schema import field


class AdaLoraOptions(AdapterOptions):
    init_r: int = field(12, "Rank every adapted matrix starts with; AdaLoRA prunes the least important "
                        "singular values from here.", ge=1, le=1024)
    target_r: int = field(8, "Average rank per matrix left when pruning ends.", ge=1, le=1024)
    lora_alpha: float = field(16, "Scale of the update (alpha / r), as in LoRA.", gt=0)
    lora_dropout: float = field(0.05, "Dropout on the adapter's input.", ge=0, lt=1)
    tinit: int = field(0, "Warm-up steps trained at init_r before pruning starts.", ge=0)
    tfinal: int = field(0, "Steps at the end trained with the final ranks fixed.", ge=0)
    deltaT: int = field(1, "Re-allocate ranks every this many optimizer steps.", ge=1)
    beta1: float = field(0.85, "EMA factor of the importance (sensitivity) scores.", gt=0, lt=1, advanced=True)
    beta2: float = field(0.85, "EMA factor of the uncertainty of the importance scores.", gt=0, lt=1, advanced=True)
    orth_reg_weight: float = field(0.5, "Weight of the penalty keeping P and Q orthogonal (added to the loss).",
                                   ge=0, advanced=True)


def _step_hook(model, step):
    model.base_model.update_and_allocate(step)


def _adalora_extra(options, model, ctx):
    if ctx.total_steps <= options.tinit + options.tfinal:
        raise ValueError(
            f"method.adalora: tinit ({options.tinit}) + tfinal ({options.tfinal}) must be below the run's "
            f"{ctx.total_steps} optimizer steps; lower them or train longer"
        )
    ctx.on_step = _step_hook
    return {"total_step": ctx.total_steps}


class AdamssOptions(AdapterOptions):
    r: int = field(100, "Total SVD rank R split into subspaces (clamped to the layer's size).", ge=1, le=4096)
    num_subspaces: int = field(5, "Subspaces K the SVD space is clustered into; each learns its own update.",
                               ge=1, le=64)
    subspace_rank: int = field(1, "Rank of the update learned in each subspace.", ge=1, le=64)
    use_asa: bool = field(False, "Adaptive Subspace Allocation: prune the least important subspaces while "
                          "training (warm-up over the first 10 %, done at half of the steps).")
    asa_target_subspaces: int = field(50, "Subspaces kept over all layers when ASA ends.", ge=1)
    mask_interval: int = field(10, "Steps between ASA pruning updates.", ge=1, advanced=True)


def _adamss_extra(options, model, ctx):
    if not options.use_asa:
        return {}
    total = max(ctx.total_steps, 3)
    ctx.on_step = _step_hook
    return {"init_warmup": max(1, total // 10), "final_warmup": max(2, total // 2)}


def _adalora_params(shapes, options, ctx) -> int:
    """P (init_r x in), Q (out x init_r) and the singular values E (init_r) per adapted layer."""
    from ..shapes import per_module

    return per_module(shapes, options, "ADALORA", lambda m: options.init_r * (m.d_in + m.d_out + 1))


def _adamss_params(shapes, options, ctx) -> int:
    """K subspaces of subspace_rank x R (A) plus out x subspace_rank (B) per layer; R = min(r, out, in + bias).

    Exact while every K-means cluster is non-empty and each subspace keeps its full subspace_rank (the
    defaults); the pruning of ``use_asa`` happens during training and is not counted.
    """
    from ..shapes import per_module

    def one(m):
        rank = min(options.r, m.d_out, m.d_in + (1 if m.bias else 0))
        k = min(options.num_subspaces, m.d_out)
        return k * options.subspace_rank * rank + options.subspace_rank * m.d_out

    return per_module(shapes, options, "ADAMSS", one)

SPECS = [
    MethodSpec(
        name="adalora",
        title="AdaLoRA",
        family="adaptive",
        summary="LoRA in SVD form whose rank budget moves to the matrices that matter most while training.",
        options=AdaLoraOptions,
        apply=peft_apply("AdaLoraConfig", extra=_adalora_extra,
                         targets_mapping="TRANSFORMERS_MODELS_TO_ADALORA_TARGET_MODULES_MAPPING"),
        trades=Trades("low", "low (LoRA-sized, pruned while training)",
                      "slower than LoRA (importance scores each step)",
                      "spends a fixed parameter budget where it helps most"),
        zero3=False,  # its orthogonality penalty reads the partitioned P and Q directly
        peft_type="ADALORA",
        params=_adalora_params,
    ),
    MethodSpec(
        name="adamss",
        title="AdaMSS",
        family="adaptive",
        summary="Clusters each weight's SVD into subspaces and learns a small update in each.",
        options=AdamssOptions,
        apply=peft_apply("AdamssConfig", extra=_adamss_extra,
                         targets_mapping="TRANSFORMERS_MODELS_TO_ADAMSS_TARGET_MODULES_MAPPING"),
        trades=Trades("low", "lowest (K x rank per layer)", "medium (SVD and clustering at start)",
                      "needs scikit-learn; optional pruning of subspaces while training"),
        quantized_base=False,
        peft_type="ADAMSS",
        params=_adamss_params,
        memory=MemoryModel(per_adapter=low_rank(input_factor=0), notes=lambda o: [
            "AdaMSS with ASA prunes subspaces while training; the count is the starting one"] if o.use_asa else []),
    ),
]
