"""ShadowPEFT: a small trainable network running alongside the frozen decoder."""
from __future__ import annotations

from typing import Optional

from ._base import AdapterOptions, MethodSpec, Targets, Trades, peft_apply
from ..schema import field


class ShadowOptions(AdapterOptions):
    target_modules: Targets = field(None, "Transformer blocks the shadow network feeds (whole blocks, not linear "
                                    "layers). Empty: every decoder block.")
    r: int = field(8, "Rank of the bottleneck that injects the shadow's correction into each block.", ge=1, le=4096)
    shadow_alpha: float = field(0.1, "Strength of the injected correction.", gt=0)
    shadow_dropout: float = field(0.2, "Dropout on the base/shadow discrepancy before the bottleneck.", ge=0, lt=1)
    shadow_num_hidden_layers: Optional[int] = field(None, "Layers of the shadow network; empty: 1.", ge=1, le=64)
    shadow_hidden_size: Optional[int] = field(None, "Width of the shadow network; empty: the base model's.", ge=8)
    auxiliary_loss_weight: float = field(0.05, "Weight of the auxiliary loss on the shadow's own prediction; "
                                         "0 turns it off.", ge=0)


_apply = peft_apply("ShadowConfig", targets_mapping=None)


def _apply_shadow(model, options, ctx):
    try:
        return _apply(model, options, ctx)
    except AttributeError as exc:
        if options.target_modules or "decoder layers" not in str(exc):
            raise
        raise ValueError(
            f"method.shadow needs a decoder-only model whose blocks it can find (.layers or .h); "
            f"{ctx.model_type!r} has none: pick a decoder model or set method.shadow.target_modules"
        ) from None


def _shadow_params(shapes, options, ctx) -> int:
    """Per adapted block: a rank-r bottleneck and two d -> r -> d update networks; plus the shadow network,
    a copy of shadow_num_hidden_layers blocks and the final norm at the shadow width (projected when narrower).
    """
    from ..shapes import shapes_for, with_heads

    d, r = shapes.hidden, options.r
    blocks = shapes.num_blocks
    per_block = 2 * d * r + 2 * (d * r + r + r * d + d)
    layers = options.shadow_num_hidden_layers or 1
    config = dict(shapes.config, num_hidden_layers=layers)
    if options.shadow_hidden_size:
        config["hidden_size"] = options.shadow_hidden_size
    small = shapes_for(config, "causal_lm")
    prefix = small.blocks + "."
    backbone = sum(m.numel for m in small.modules if m.name.startswith(prefix) or m.kind == "norm"
                   and not m.name.startswith(prefix))
    if options.shadow_hidden_size and options.shadow_hidden_size != d:
        backbone += options.shadow_hidden_size * d
    return with_heads(shapes, options, blocks * per_block + backbone)

SPECS = [
    MethodSpec(
        name="shadow",
        title="ShadowPEFT",
        family="shadow",
        summary="A small parallel 'shadow' decoder corrects each frozen block's input and is updated from its output.",
        options=ShadowOptions,
        apply=_apply_shadow,
        trades=Trades("medium", "medium (a one-layer decoder)", "medium", "input-dependent, so it cannot be merged"),
        model_kinds=frozenset({"causal_lm", "seq_cls"}),
        why_not={k: "ShadowPEFT wraps the blocks of decoder-only models" for k in ("seq2seq", "token_cls", "qa")},
        mergeable=False,
        peft_type="SHADOW",
        params=_shadow_params,
    ),
]
