"""Methods that learn per-channel vectors instead of matrices: (IA)³, BEFT and LayerNorm tuning."""
from __future__ import annotations

from typing import Optional

from ._base import AdapterOptions, MethodSpec, Targets, Trades, peft_apply, targets_field
from ._memory import MemoryModel, Saved, no_adapters, no_saves
from ..schema import field


class IA3Options(AdapterOptions):
    target_modules: Targets = targets_field("a learned scaling vector")
    feedforward_modules: Optional[list[str]] = field(
        None, "Which of the target modules are feed-forward layers (scaled on their input, not their output). "
        "Empty: peft's default for the architecture.", advanced=True,
    )


def _ia3_extra(options, model, ctx):
    if options.target_modules or options.feedforward_modules:
        return {}
    from peft.utils import constants

    if ctx.model_type in constants.TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING:
        return {
            "feedforward_modules": constants.TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING[ctx.model_type]
        }
    return {"feedforward_modules": []}


class BeftOptions(AdapterOptions):
    target_modules: Targets = targets_field("a trainable bias vector (peft's default: the value projections)")


class LNTuningOptions(AdapterOptions):
    target_modules: Targets = field(
        None, "Names of the normalisation layers to train. Empty: peft's default for the architecture, "
        "else every module whose class name ends in 'Norm'.",
    )


def _ln_extra(options, model, ctx):
    if options.target_modules:
        return {}
    from peft.utils import constants

    known = constants.TRANSFORMERS_MODELS_TO_LNTUNING_TARGET_MODULES_MAPPING.get(ctx.model_type)
    if known:
        return {"target_modules": known}
    names = sorted({n.split(".")[-1] for n, m in model.named_modules() if type(m).__name__.endswith("Norm")})
    if not names:
        raise ValueError("method.ln_tuning: found no normalisation layers; set method.ln_tuning.target_modules")
    return {"target_modules": names}


def _ia3_saved(m, options, ctx, input_grad: bool = True) -> Saved:
    """IA3 scales a feed-forward layer's input (peft casts it to the vector's dtype first and keeps that cast) or
    another layer's output (kept in the output's dtype)."""
    ff = options.feedforward_modules
    if ff is None:
        from ..shapes import default_targets

        ff = default_targets("IA3_FEEDFORWARD", ctx.model_type) or []
    if any(m.name == f or m.name.endswith("." + f) for f in ff):
        return Saved(m.d_in * ctx.adapter_bytes)
    return Saved(m.d_out * ctx.act_bytes)


def _ia3_params(shapes, options, ctx) -> int:
    """One vector per adapted layer: in_features for feed-forward layers (scaled on the input), else out."""
    from ..shapes import default_targets, targets_of, with_heads

    ff = options.feedforward_modules
    if ff is None:
        ff = [] if options.target_modules else (default_targets("IA3_FEEDFORWARD", shapes.model_type) or [])
    n = sum(m.d_in if shapes.matches(m.name, ff) else m.d_out for m in targets_of(shapes, options, "IA3"))
    return with_heads(shapes, options, n)


def _beft_params(shapes, options, ctx) -> int:
    from ..shapes import per_module

    return per_module(shapes, options, "BEFT", lambda m: m.d_out)


def _ln_params(shapes, options, ctx) -> int:
    """Weights (and biases) of the chosen normalisation layers; by default peft's list, else every *Norm."""
    from ..shapes import default_targets, with_heads

    targets = options.target_modules or default_targets("LNTUNING", shapes.model_type) or sorted(
        {m.suffix for m in shapes.norms if m.cls.endswith("Norm")})
    return with_heads(shapes, options, sum(m.numel for m in shapes.targeted(targets, ("norm",))))


def _ln_trained(shapes, options) -> set:
    """The norms LayerNorm tuning trains (as ``_ln_params`` finds them) and the head."""
    from ..shapes import default_targets

    targets = options.target_modules or default_targets("LNTUNING", shapes.model_type) or sorted(
        {m.suffix for m in shapes.norms if m.cls.endswith("Norm")})
    return {m.name for m in shapes.targeted(targets, ("norm",))} | {m.name for m in shapes.head_modules()}


SPECS = [
    MethodSpec(
        name="ia3",
        title="(IA)³",
        family="scaling",
        summary="Learned vectors rescale keys, values and feed-forward activations; the fewest parameters of all.",
        options=IA3Options,
        apply=peft_apply("IA3Config", extra=_ia3_extra,
                         targets_mapping="TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING"),
        trades=Trades("low", "lowest (~0.01 %)", "fast", "few-shot method; needs a high learning rate (~1e-2) "
                      "and many steps to move the loss"),
        barely_learns=True,
        peft_type="IA3",
        params=_ia3_params,
        memory=MemoryModel(per_adapter=_ia3_saved),
        defaults={"training.learning_rate": 1e-2},
    ),
    MethodSpec(
        name="beft",
        title="BEFT",
        family="scaling",
        summary="Bias-efficient fine-tuning: trains only a bias vector on chosen projections (value by default).",
        options=BeftOptions,
        apply=peft_apply("BeftConfig", targets_mapping="TRANSFORMERS_MODELS_TO_BEFT_TARGET_MODULES_MAPPING"),
        trades=Trades("low", "lowest (one vector per layer)", "fast",
                      "BitFit-style; cannot merge into layers that have no bias (e.g. Llama)"),
        mergeable=False,
        peft_type="BEFT",
        params=_beft_params,
        memory=MemoryModel(per_adapter=no_saves),
    ),
    MethodSpec(
        name="ln_tuning",
        title="LayerNorm tuning",
        family="scaling",
        summary="Trains only the normalisation layers' weights and biases.",
        options=LNTuningOptions,
        apply=peft_apply("LNTuningConfig", extra=_ln_extra, targets_mapping=None),
        trades=Trades("low", "lowest (norm weights only)", "fast", "a strong baseline for its size"),
        peft_type="LN_TUNING",
        params=_ln_params,
        memory=MemoryModel(trained=_ln_trained, adapted=no_adapters),
    ),
]
