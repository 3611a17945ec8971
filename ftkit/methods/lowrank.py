"""Low-rank adapters that change how LoRA's update is shaped, bounded or shared.

DeLoRA, GraLoRA, HiRA, MiSS, Lily, PEANuT, DEFT and GLoRA.
"""
from __future__ import annotations

from typing import Literal, Optional

from ._base import AdapterOptions, MethodSpec, Trades, peft_apply
from ._memory import MemoryModel, low_rank
from ..schema import field


def _mapping(name: str) -> str:
    return f"TRANSFORMERS_MODELS_TO_{name}_TARGET_MODULES_MAPPING"


BIAS_HELP = "Which biases train too: none, all, or only those of adapted layers."


class DeloraOptions(AdapterOptions):
    r: int = field(8, "Rank of the update.", ge=1, le=4096)
    delora_lambda: float = field(15, "Initial bound on the update's Frobenius norm (learned); keeps the model "
                                 "from drifting far from the base.", gt=0)
    module_dropout: float = field(0.0, "Chance of switching a layer's adapter off for a step.", ge=0, lt=1)


class GraloraOptions(AdapterOptions):
    r: int = field(16, "Total rank; parameters equal LoRA's at the same r. Must be divisible by gralora_k.",
                   ge=1, le=4096)
    gralora_k: int = field(2, "Sub-blocks per side: the weight is split into k x k blocks, each with its own "
                           "low-rank adapter (expressivity grows with k).", ge=1, le=64)
    alpha: float = field(32, "Scale of the update: alpha / (r + hybrid_r).", gt=0)
    hybrid_r: int = field(0, "Extra rank given to a plain LoRA path alongside (Hybrid GraLoRA).", ge=0)
    gralora_dropout: float = field(0.0, "Dropout on the adapter's input.", ge=0, lt=1)


class HiraOptions(AdapterOptions):
    r: int = field(16, "Rank of B·A, which multiplies the frozen weight element-wise (a high-rank update).",
                   ge=1, le=4096)
    hira_dropout: float = field(0.0, "Dropout on the adapter's input.", ge=0, lt=1)


class MissOptions(AdapterOptions):
    r: int = field(16, "Shard size along the input dimension; must divide the layers' input width.", ge=1, le=4096)
    mini_r: int = field(1, "Shard size along the output dimension (the 'mini' variant).", ge=1, le=4096)
    miss_dropout: float = field(0.0, "Dropout on the adapter's input.", ge=0, lt=1)
    init_weights: Literal[True, "bat", "mini"] = field(
        True, "Variant: true is MiSS (balanced), 'bat' the block-affine Bat form, 'mini' fewer parameters.")


class LilyOptions(AdapterOptions):
    r: int = field(16, "Inner width of each adapter (rank of A·B).", ge=1, le=4096)
    stride_A: int = field(1, "Consecutive layers sharing one A (input) adapter.", ge=1)
    num_B: int = field(2, "Globally shared B (output) adapters, mixed per layer by a learned router.", ge=2)
    scaling: float = field(1.0, "Multiplier of the adapter output.", gt=0)


class PeanutOptions(AdapterOptions):
    r: int = field(16, "Hidden width of the adapter network.", ge=1, le=4096)
    depth: int = field(0, "Hidden layers between the input and output projections.", ge=0, le=8)
    act_fn: Literal["relu", "gelu", "silu", "tanh"] = field("relu", "Non-linearity inside the adapter network.")
    scaling: float = field(1.0, "Multiplier of the adapter output.", gt=0)


class DeftOptions(AdapterOptions):
    r: int = field(8, "Rank of the projection P and the injection R.", ge=1, le=4096)
    decomposition_method: Literal["relu", "qr"] = field(
        "relu", "How the projector is built from P: 'relu' (P·relu(P)ᵀ) or 'qr' (an orthogonal projection).")
    alpha: Optional[float] = field(None, "Scale of the injected term: alpha / r; empty: no scaling.", gt=0)
    para: bool = field(False, "PaRa variant: only remove a subspace from W, inject nothing.", advanced=True)
    deft_dropout: float = field(0.0, "Dropout on the adapter's input.", ge=0, lt=1)


class GloraOptions(AdapterOptions):
    r: int = field(4, "Rank of the parts that use the 'lora' form.", ge=1, le=4096)
    config_A_B: Literal["lora", "vector", "constant", "none"] = field(
        "lora", "Form of A and B in W' = W + W·A + B: low-rank 'lora', per-channel 'vector', one 'constant'.")
    config_C: Literal["lora", "vector", "none"] = field(
        "lora", "Form of C, which couples the weight into the bias (b' += W·C).")
    config_D_E: Literal["vector", "constant", "none"] = field(
        "constant", "Form of D and E in b' = b + b·D + E.")


def _lora_sized(mapping: str, extra=lambda options, m: 0):
    def params(shapes, options, ctx) -> int:
        from ..shapes import per_module

        return per_module(shapes, options, mapping, lambda m: options.r * (m.d_in + m.d_out) + extra(options, m))

    return params


def _gralora_params(shapes, options, ctx) -> int:
    """k x k sub-block adapters with LoRA's total r x (in + out), plus a hybrid LoRA of hybrid_r."""
    from ..shapes import per_module

    return per_module(shapes, options, "GRALORA", lambda m: (options.r + options.hybrid_r) * (m.d_in + m.d_out))


def _miss_params(shapes, options, ctx) -> int:
    """One shard per layer: r x out (MiSS), out/r blocks of r x r (Bat), or r x mini_r (mini)."""
    from ..shapes import per_module

    def one(m):
        if options.init_weights == "bat":
            return (m.d_out // options.r) * options.r * options.r
        if options.init_weights == "mini":
            return options.r * options.mini_r
        return options.r * m.d_out

    return per_module(shapes, options, "MISS", one)


def _lily_params(shapes, options, ctx) -> int:
    """Per (target, shape) group: one A (r x in) per stride_A layers, one shared B (num_B*r x out),
    and a router (num_B x r) per layer."""
    from ..shapes import targets_of, with_heads

    targets = shapes.resolve(options.target_modules, "LILY")
    names = sorted(shapes.all_linear_names()) if targets == "all-linear" else targets
    groups: dict = {}
    for m in targets_of(shapes, options, "LILY"):
        if isinstance(names, str):
            suffix = names
        else:
            suffix = [t for t in names if m.name.endswith(t)][-1]
        groups.setdefault((suffix, m.d_out, m.d_in), []).append(m)
    n = 0
    for (_, d_out, d_in), mods in groups.items():
        n += -(-len(mods) // options.stride_A) * options.r * d_in
        n += options.num_B * options.r * d_out
        n += len(mods) * options.r * options.num_B
    return with_heads(shapes, options, n)


def _peanut_params(shapes, options, ctx) -> int:
    """A (out -> r) and B (r -> out) read the weight, plus depth r x r encoder and decoder layers."""
    from ..shapes import per_module

    return per_module(shapes, options, "PEANUT", lambda m: 2 * options.r * m.d_out + 2 * options.depth * options.r ** 2)


def _deft_params(shapes, options, ctx) -> int:
    """P (out x r) and, unless PaRa, R (r x in); r is capped at out."""
    from ..shapes import per_module

    def one(m):
        r = min(options.r, m.d_out)
        return r * m.d_out + (0 if options.para else r * m.d_in)

    return per_module(shapes, options, "DEFT", one)


def _glora_params(shapes, options, ctx) -> int:
    """A and B (low-rank, vector or scalar); C, D and E only on layers that have a bias."""
    from ..shapes import per_module

    r = options.r

    def one(m):
        ab = {"lora": r * (m.d_in + m.d_out), "vector": m.d_out, "constant": 1, "none": 0}[options.config_A_B]
        n = 2 * ab
        if m.bias:
            n += {"lora": r * (m.d_in + 1), "vector": m.d_in, "none": 0}[options.config_C]
            n += 2 * {"vector": m.d_out, "constant": 1, "none": 0}[options.config_D_E]
        return n

    return per_module(shapes, options, "GLORA", one)

SPECS = [
    MethodSpec(
        name="delora",
        title="DeLoRA",
        family="lowrank",
        summary="LoRA with normalised factors and a learned bound on the update's size.",
        options=DeloraOptions,
        apply=peft_apply("DeloraConfig", targets_mapping=_mapping("DELORA")),
        trades=Trades("low", "low (LoRA-sized)", "fast", "robust to learning rate; limits drift from the base"),
        quantized_base=False,
        peft_type="DELORA",
        params=_lora_sized("DELORA", lambda options, m: 1),
        memory=MemoryModel(per_adapter=low_rank(input_factor=0, rank_factor=2, copies=1)),
    ),
    MethodSpec(
        name="gralora",
        title="GraLoRA",
        family="lowrank",
        summary="Splits each weight into k x k blocks with their own low-rank adapters: LoRA's size, more rank.",
        options=GraloraOptions,
        apply=peft_apply("GraloraConfig", targets_mapping=_mapping("GRALORA")),
        trades=Trades("low", "low (LoRA-sized)", "fast", "helps at large ranks where LoRA saturates"),
        peft_type="GRALORA",
        params=_gralora_params,
    ),
    MethodSpec(
        name="hira",
        title="HiRA",
        family="lowrank",
        summary="High-rank update: the frozen weight times (element-wise) a low-rank B·A.",
        options=HiraOptions,
        apply=peft_apply("HiraConfig", targets_mapping=_mapping("HIRA")),
        trades=Trades("low", "low (LoRA-sized)", "fast", "high-rank update at LoRA's parameter count"),
        peft_type="HIRA",
        params=_lora_sized("HIRA"),
        memory=MemoryModel(per_adapter=low_rank(rank_factor=0, weights_if_grad=1)),
    ),
    MethodSpec(
        name="miss",
        title="MiSS",
        family="lowrank",
        summary="Matrix shard sharing: one small trainable shard, repeated over the weight, forms the update.",
        options=MissOptions,
        apply=peft_apply("MissConfig", targets_mapping=_mapping("MISS")),
        trades=Trades("low", "low", "fast", "fewer parameters than LoRA at similar quality"),
        peft_type="MISS",
        params=_miss_params,
        memory=MemoryModel(per_adapter=low_rank(input_factor=0)),
    ),
    MethodSpec(
        name="lily",
        title="Lily",
        family="lowrank",
        summary="Low-rank adapters interconnected across layers: shared A per layer group, routed global B experts.",
        options=LilyOptions,
        apply=peft_apply("LilyConfig", targets_mapping=_mapping("LILY")),
        trades=Trades("low", "low", "medium (router)", "cannot be merged: the router mixes adapters per input"),
        mergeable=False,
        peft_type="LILY",
        params=_lily_params,
        memory=MemoryModel(per_adapter=low_rank(input_factor=0, rank_factor=0, copies=1)),
    ),
    MethodSpec(
        name="peanut",
        title="PEANuT",
        family="lowrank",
        summary="A small non-linear network of the frozen weight produces the update.",
        options=PeanutOptions,
        apply=peft_apply("PeanutConfig", targets_mapping=_mapping("PEANUT")),
        trades=Trades("low", "low", "medium", "non-linear update, LoRA-like size"),
        quantized_base=False,
        peft_type="PEANUT",
        params=_peanut_params,
        memory=MemoryModel(per_adapter=low_rank(input_factor=0, weights=1)),
    ),
    MethodSpec(
        name="deft",
        title="DEFT",
        family="lowrank",
        summary="Removes a learned low-rank subspace from each weight and injects a new one.",
        options=DeftOptions,
        apply=peft_apply("DeftConfig", targets_mapping=_mapping("DEFT")),
        trades=Trades("low", "low (LoRA-sized)", "fast", "knowledge editing and injection"),
        quantized_base=False,
        peft_type="DEFT",
        params=_deft_params,
        memory=MemoryModel(per_adapter=low_rank(rank_factor=4, copies=1)),
    ),
    MethodSpec(
        name="glora",
        title="GLoRA",
        family="lowrank",
        summary="Generalised LoRA: scales and shifts both weights and biases, each part low-rank, vector or scalar.",
        options=GloraOptions,
        apply=peft_apply("GloraConfig", targets_mapping=_mapping("GLORA")),
        trades=Trades("low", "low", "medium", "a superset of LoRA, IA3-like scaling and bias tuning"),
        quantized_base=False,
        peft_type="GLORA",
        params=_glora_params,
        memory=MemoryModel(per_adapter=low_rank(weights_if_grad=1)),
    ),
]
