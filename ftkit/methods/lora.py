"""LoRA and the variants peft builds on it: rsLoRA, DoRA, PiSSA, OLoRA, LoftQ and QLoRA."""
from __future__ import annotations

from typing import Literal

from ._base import AdapterOptions, MethodSpec, Trades, peft_apply
from ._memory import MemoryModel, Saved, low_rank
from ..schema import field


class LoraOptions(AdapterOptions):
    r: int = field(8, "Rank of the update matrices A (r x d_in) and B (d_out x r).", ge=1, le=4096)
    lora_alpha: float = field(16, "Scale of the update: alpha / r (alpha / sqrt(r) with rsLoRA).", gt=0)
    lora_dropout: float = field(0.05, "Dropout on the adapter's input.", ge=0, lt=1)
    bias: Literal["none", "all", "lora_only"] = field("none", "Which biases train too.", advanced=True)


class LoftQOptions(LoraOptions):
    loftq_bits: Literal[2, 4, 8] = field(4, "Bits of the quantized backbone LoftQ initialises against.")
    loftq_iter: int = field(1, "Alternating quantize/SVD iterations.", ge=1, le=10)


def _loftq_config(options, model, ctx):
    from peft import LoftQConfig

    return {
        "init_lora_weights": "loftq",
        "loftq_config": LoftQConfig(loftq_bits=options.loftq_bits, loftq_iter=options.loftq_iter),
    }


def _lora_params(shapes, options, ctx, dora: bool = False) -> int:
    """r x (in + out) per adapted layer (DoRA: + a magnitude vector of out); biases as ``bias`` says."""
    from ..shapes import targets_of, with_heads

    mods = targets_of(shapes, options, "LORA", kinds=("linear", "embedding"))
    n = sum(options.r * (m.d_in + m.d_out) + (m.d_out if dora and m.kind == "linear" else 0) for m in mods)
    if options.bias == "all":
        n += sum(m.d_out for m in shapes.modules if m.bias)
    elif options.bias == "lora_only":
        n += sum(m.d_out for m in mods if m.bias)
    return with_heads(shapes, options, n)


def _dora_params(shapes, options, ctx) -> int:
    return _lora_params(shapes, options, ctx, dora=True)

_dora_lora_part = low_rank(rank_factor=2, out_factor=2)


def _dora_saved(m, options, ctx, input_grad: bool = True) -> Saved:
    """peft's ``DoraLinearLayer.forward``: LoRA's terms and the base and LoRA results (two output-sized tensors
    for the magnitude's products; ``get_lora_weight``'s graph is dropped, its result is used detached). The base
    weight cast to x's dtype (the adapter's) is a copy kept by ``F.linear`` when the dtypes differ (a 16-bit
    model, fp32 adapters, no autocast) and x needs a gradient."""
    base = _dora_lora_part(m, options, ctx, input_grad)
    if input_grad and ctx.adapter_bytes != ctx.act_bytes and not ctx.autocast:
        return base._replace(weights=base.weights + m.d_in * m.d_out * ctx.adapter_bytes)
    return base


SPECS = [
    MethodSpec(
        name="lora",
        title="LoRA",
        family="lora",
        summary="Low-rank update B·A added to frozen linear layers.",
        options=LoraOptions,
        apply=peft_apply("LoraConfig"),
        trades=Trades("low", "low (0.1-2 %)", "fast", "close to full fine-tuning on most tasks"),
        peft_type="LORA",
        params=_lora_params,
    ),
    MethodSpec(
        name="qlora",
        title="QLoRA",
        family="lora",
        summary="LoRA on a 4-bit (nf4) base model quantized by bitsandbytes.",
        options=LoraOptions,
        apply=peft_apply("LoraConfig"),
        trades=Trades("lowest", "low (0.1-2 %)", "slower (dequantizes each step)",
                      "base weights at ~0.5 byte/param; small quality loss from quantization"),
        implies_bits=4,
        zero3=False,
        peft_type="LORA",
        params=_lora_params,
    ),
    MethodSpec(
        name="rslora",
        title="rsLoRA",
        family="lora",
        summary="LoRA scaled by alpha/sqrt(r): stable learning at high ranks.",
        options=LoraOptions,
        apply=peft_apply("LoraConfig", fixed={"use_rslora": True}),
        trades=Trades("low", "low (0.1-2 %)", "fast", "helps when r is large"),
        peft_type="LORA",
        params=_lora_params,
    ),
    MethodSpec(
        name="dora",
        title="DoRA",
        family="lora",
        summary="Weight-decomposed LoRA: trains a magnitude vector and a LoRA direction.",
        options=LoraOptions,
        apply=peft_apply("LoraConfig", fixed={"use_dora": True}),
        trades=Trades("low", "low (LoRA + one vector per layer)", "slower than LoRA (~1.3-2x)",
                      "often closer to full fine-tuning than LoRA at low rank"),
        peft_type="LORA",
        params=_dora_params,
        slowdown=1.3,
        memory=MemoryModel(per_adapter=_dora_saved),
    ),
    MethodSpec(
        name="pissa",
        title="PiSSA",
        family="lora",
        summary="LoRA initialised from the principal singular vectors of each weight.",
        options=LoraOptions,
        # the exact SVD, not peft's randomized "pissa_niter_N": peft repeats the init on every reload, and only a
        # deterministic one rebuilds the residual base the adapter trained against
        apply=peft_apply("LoraConfig", fixed={"init_lora_weights": "pissa"}),
        trades=Trades("low", "low (0.1-2 %)", "fast after one exact SVD per layer at start",
                      "converges faster than LoRA"),
        quantized_base=False,  # peft initialises PiSSA from full-precision weights only
        peft_type="LORA",
        params=_lora_params,
    ),
    MethodSpec(
        name="olora",
        title="OLoRA",
        family="lora",
        summary="LoRA initialised from a QR decomposition of each weight.",
        options=LoraOptions,
        apply=peft_apply("LoraConfig", fixed={"init_lora_weights": "olora"}),
        trades=Trades("low", "low (0.1-2 %)", "fast (QR once at start)", "converges faster than LoRA"),
        peft_type="LORA",
        params=_lora_params,
    ),
    MethodSpec(
        name="loftq",
        title="LoftQ",
        family="lora",
        summary="LoRA initialised to offset the error of quantizing the base.",
        options=LoftQOptions,
        apply=peft_apply("LoraConfig", extra=_loftq_config, own=("loftq_bits", "loftq_iter")),
        trades=Trades("low", "low (0.1-2 %)", "fast (quantize+SVD at start)",
                      "recovers quality lost to low-bit quantization"),
        quantized_base=False,
        needs_cuda=True,  # peft runs LoftQ's quantize/SVD rounds on a GPU
        peft_type="LORA",
        params=_lora_params,
    ),
]
