"""What a method costs in memory and time beyond its parameters: the terms the estimator reads from its spec.

A ``MemoryModel`` on a ``MethodSpec`` says, for the model described by ``ftkit.shapes.Shapes``:

* ``trained``: base modules whose own weights train (full fine-tuning: all; freeze: the last blocks;
  LayerNorm tuning: the norms). Autograd keeps a linear layer's input, and a norm's normalised output,
  only when that weight trains: a frozen linear saves nothing for backward.
* ``adapted``: the modules wrapped by an adapter (default: the method's peft targets).
* ``per_adapter(module, options, ctx)``: bytes per token one adapted module keeps, as ``Saved(extra,
  raw_input)``: ``raw_input`` when the adapter keeps its layer's very input tensor (shared with other
  adapters and the base layer on the same input: counted once), ``extra`` for everything else (a dropout
  mask and the dropped copy, peft's copy of the input in the adapter's dtype, rank-r intermediates).
* ``per_token(shapes, options, ctx)``: bytes per token tied to no module (ShadowPEFT's own layers).
* ``weight_space(shapes, options, ctx)``: bytes that scale with weights, not tokens (HRA's reflections).
* ``first_block(shapes, options)``: the lowest block backward reaches (freeze, adaption prompt).
* ``extra_tokens(options)``: tokens a method adds to every sequence (prompt tuning's virtual tokens);
  ``kv_tokens(options)``: key/value positions it adds to every attention (prefix tuning).

``ctx`` is an ``ActivationContext``: the activation dtype's bytes, the adapter dtype's, the bytes of a
dropout mask (1 on CUDA's fused dropout, the activation dtype on CPU), and whether autocast casts each
linear's input. Nothing here imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Optional


@dataclass(frozen=True)
class ActivationContext:
    act_bytes: int = 4  # dtype of the base model's activations
    adapter_bytes: int = 4  # dtype of the adapter weights (peft: fp32)
    mask_bytes: int = 4  # a dropout mask element: fp32/bf16 noise on CPU, bool on CUDA
    autocast: bool = False  # mixed precision: each linear casts its input to the 16-bit dtype
    model_type: str = ""  # transformers' model_type (peft's per-architecture defaults)


class Saved(NamedTuple):
    extra: float  # bytes per token
    raw_input: bool = False  # keeps the layer's input tensor itself
    weights: float = 0.0  # bytes that scale with the weight, not with tokens (a delta weight kept for backward)


def dropout_of(options: Any, *names: str) -> float:
    """The adapter's input dropout: the first of ``names`` the options have, else any ``*_dropout``."""
    fields = type(options).model_fields
    for n in names or [k for k in fields if k.endswith("dropout") and k not in ("module_dropout", "rank_dropout")]:
        if n in fields:
            return float(getattr(options, n) or 0.0)
    return 0.0


def adapter_input(d_in: int, dropout: float, ctx: ActivationContext, input_grad: bool = True) -> Saved:
    """What an adapter's first weight keeps of its input: with dropout on, the mask (when the input needs a
    gradient) and the dropped copy; with dropout off, peft's cast of the input to the adapter's dtype (a
    copy when the dtypes differ, the input itself when they agree); under autocast the 16-bit cast."""
    if dropout > 0:  # peft casts x to the adapter's dtype first: on CPU the mask is in that dtype too
        kept = 2 if ctx.autocast else ctx.adapter_bytes
        mask = ctx.mask_bytes if ctx.mask_bytes == 1 else kept
        return Saved(d_in * (kept + (mask if input_grad else 0)))
    if ctx.autocast:
        return Saved(d_in * 2)
    if ctx.adapter_bytes != ctx.act_bytes:
        return Saved(d_in * ctx.adapter_bytes)
    return Saved(0.0, raw_input=True)


def low_rank(rank: Callable[[Any], int] = None, dropout: tuple[str, ...] = (), out_factor: float = 0.0,
             input_factor: float = 1.0, rank_factor: float = 1.0, weights: float = 0.0,
             weights_if_grad: float = 0.0, copies: float = 0.0) -> Callable:
    """An adapter of the LoRA kind: its input (see ``adapter_input``) times ``input_factor``,
    ``rank_factor`` rank-r intermediates, ``out_factor`` output-sized and ``copies`` input-sized tensors in
    the adapter's dtype, and ``weights`` (``weights_if_grad``: only when the input needs a gradient)
    d_in x d_out matrices."""
    rank = rank or rank_r

    def per_adapter(m, options, ctx: ActivationContext, input_grad: bool = True) -> Saved:
        first = adapter_input(m.d_in, dropout_of(options, *dropout), ctx, input_grad)
        r = rank(options) or 0
        b = 2 if ctx.autocast else ctx.adapter_bytes
        w = (weights + (weights_if_grad if input_grad else 0.0)) * m.d_in * m.d_out * ctx.adapter_bytes
        return Saved(first.extra * input_factor + rank_factor * r * b + out_factor * m.d_out * b + copies * m.d_in * b,
                     first.raw_input and input_factor > 0, w)

    return per_adapter


def rank_r(options: Any) -> int:
    return getattr(options, "r", None) or getattr(options, "init_r", None) or 0


def no_saves(m, options, ctx, input_grad: bool = True) -> Saved:
    return Saved(0.0)


def raw_input(m, options, ctx, input_grad: bool = True) -> Saved:
    """Keeps only the layer's input itself (shared with the base layer and other adapters on it)."""
    return Saved(0.0, raw_input=True)


def no_adapters(shapes, options) -> list:
    return []


@dataclass(frozen=True)
class MemoryModel:
    trained: Optional[Callable[[Any, Any], set]] = None
    adapted: Optional[Callable[[Any, Any], list]] = None
    per_adapter: Callable = low_rank()
    per_token: Optional[Callable[[Any, Any, ActivationContext], float]] = None
    weight_space: Optional[Callable[[Any, Any, ActivationContext], float]] = None
    first_block: Optional[Callable[[Any, Any], int]] = None
    extra_tokens: Optional[Callable[[Any], int]] = None
    #: key/value positions a method adds to every attention (prefix tuning): attention needs a gradient
    kv_tokens: Optional[Callable[[Any], int]] = None
    #: notes the estimate adds for these options (what the numbers cannot know)
    notes: Optional[Callable[[Any], list]] = None
    #: whether the trainable count includes a trained copy of the task head (peft's modules_to_save)
    saves_head: bool = True


LORA_LIKE = MemoryModel()
