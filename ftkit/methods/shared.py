"""Adapters built on frozen random projections shared by all layers: only small vectors or a bank train.

VeRA, PVeRA, VB-LoRA, RandLoRA, Uni-LoRA, TinyLoRA and FRoD.
"""
from __future__ import annotations

from typing import Literal, Optional

from ._base import AdapterOptions, MethodSpec, Trades, peft_apply
from ._memory import MemoryModel, low_rank
from ._shapes import divisor_up_to, linear_gcd
from ..schema import field


def _mapping(name: str) -> str:
    return f"TRANSFORMERS_MODELS_TO_{name}_TARGET_MODULES_MAPPING"


class VeraOptions(AdapterOptions):
    r: int = field(256, "Rank of the shared random matrices A and B; higher than LoRA's, since only the "
                   "scaling vectors train.", ge=1, le=8192)
    d_initial: float = field(0.1, "Initial value of the d scaling vector (small values train best).", gt=0, le=1)
    vera_dropout: float = field(0.0, "Dropout on the adapter's input.", ge=0, lt=1)
    projection_prng_key: int = field(0, "Seed of the frozen random projections.", ge=0, advanced=True)
    save_projection: bool = field(True, "Save the projections with the adapter (bigger file, reloads anywhere).",
                                  advanced=True)


class PveraOptions(AdapterOptions):
    r: int = field(256, "Rank of the shared random matrices; higher than LoRA's, since only vectors train.",
                   ge=1, le=8192)
    d_initial: float = field(0.1, "Initial value of the d scaling vector.", gt=0, le=1)
    pvera_dropout: float = field(0.0, "Dropout on the adapter's input.", ge=0, lt=1)
    sample_at_inference: bool = field(False, "Sample from the learned distribution at inference instead of "
                                      "using its mean.", advanced=True)


class VBLoraOptions(AdapterOptions):
    r: int = field(4, "Rank of the update matrices, each built from vectors drawn from the bank.", ge=1, le=256)
    num_vectors: int = field(256, "Vectors in the shared bank; raise it for larger models.", ge=2, le=65536)
    vector_length: Optional[int] = field(
        None, "Length of each bank vector; must divide the layers' widths. Empty: the largest divisor of "
        "every linear width up to 256.", ge=1, le=4096,
    )
    topk: int = field(2, "Bank vectors mixed per sub-vector (top-K of learned logits); 2 works best.", ge=1, le=16)
    vblora_dropout: float = field(0.0, "Dropout on the adapter's input.", ge=0, lt=1)
    init_vector_bank_bound: float = field(0.02, "Bank initialised uniformly in [-bound, bound]; never 0.",
                                          gt=0, advanced=True)
    init_logits_std: float = field(0.1, "Std of the initial selection logits.", gt=0, advanced=True)


def _vblora_extra(options, model, ctx):
    if options.vector_length:
        return {}
    return {"vector_length": divisor_up_to(linear_gcd(model), 256)}


class RandLoraOptions(AdapterOptions):
    r: int = field(32, "Rank of each frozen random basis; lower r means more bases, more trainable parameters.",
                   ge=1, le=4096)
    randlora_alpha: float = field(640, "Scale of the update; typically 20x r.", gt=0)
    randlora_dropout: float = field(0.0, "Dropout on the adapter's input.", ge=0, lt=1)
    sparse: bool = field(False, "Use sparse ternary random bases.", advanced=True)
    very_sparse: bool = field(False, "Use very sparse random bases.", advanced=True)


class UniLoraOptions(AdapterOptions):
    r: int = field(4, "Rank of the LoRA matrices that are projected from the one shared vector.", ge=1, le=256)
    theta_d_length: int = field(256, "Length of the single trainable vector shared by every layer.", ge=1)
    unilora_dropout: float = field(0.0, "Dropout on the adapter's input.", ge=0, lt=1)
    init_theta_d_bound: float = field(0.02, "Vector initialised uniformly in [-bound, bound].", gt=0, advanced=True)
    proj_seed: int = field(42, "Seed of the fixed index assignment.", ge=0, advanced=True)


class TinyLoraOptions(AdapterOptions):
    r: int = field(2, "Rank of the frozen SVD of each weight.", ge=1, le=64)
    u: int = field(64, "Length of the trainable vector per group of layers.", ge=1, le=65536)
    weight_tying: float = field(0.0, "Share of vectors across layers: 0 none, 1 one vector for all.", ge=0, le=1)
    tinylora_dropout: float = field(0.0, "Dropout on the adapter's input.", ge=0, lt=1)
    init_weights: Literal[True, "uniform"] = field(
        True, "true: vectors start at 0 (the adapter starts as a no-op); 'uniform': small random values.",
        advanced=True,
    )


class FrodOptions(AdapterOptions):
    sparse_rate: float = field(0.01, "Share of off-diagonal entries of the rotation that train.", gt=0, le=1)
    frod_dropout: float = field(0.0, "Dropout on the adapter's input.", ge=0, lt=1)
    regularization_alpha: float = field(1e-3, "Stabiliser of the matrix inverses when building the shared basis.",
                                        gt=0, advanced=True)


SHARED_TRADES_NOTE = "random projections are frozen; memory close to LoRA's, storage far smaller"

def _vera_params(lambda_d: int = 1):
    def params(shapes, options, ctx) -> int:
        """A scaling vector of out (b) and one of r (d; two for PVeRA's mean and spread) per layer."""
        from ..shapes import per_module

        return per_module(shapes, options, "VERA" if lambda_d == 1 else "PVERA",
                          lambda m: m.d_out + lambda_d * options.r)

    return params


def _vblora_params(shapes, options, ctx) -> int:
    """The shared bank (num_vectors x vector_length) plus top-k logits for every sub-vector of A and B."""
    from ..shapes import divisor_up_to, per_module

    length = options.vector_length or divisor_up_to(shapes.linear_gcd(), 256)
    nv, r = options.num_vectors, options.r
    return per_module(shapes, options, "VBLORA",
                      lambda m: r * (m.d_in // length) * nv + (m.d_out // length) * r * nv, shared=nv * length)


def _randlora_params(shapes, options, ctx) -> int:
    """lambda (r x bases) and gamma (bases x min(in, out)), bases = ceil(min(in, out) / r)."""
    from ..shapes import per_module

    def one(m):
        low = min(m.d_in, m.d_out)
        bases = -(-low // options.r)
        return options.r * bases + bases * low

    return per_module(shapes, options, "RANDLORA", one)


def _unilora_params(shapes, options, ctx) -> int:
    from ..shapes import per_module

    return per_module(shapes, options, "UNILORA", lambda m: 0, shared=options.theta_d_length)


def _tinylora_params(shapes, options, ctx) -> int:
    """One u-vector per group of layers; weight_tying sets how many groups there are."""
    from ..shapes import targets_of, with_heads

    count = len(targets_of(shapes, options, "TINYLORA", kinds=("linear", "embedding")))
    groups = max(1, round(count * (1.0 - options.weight_tying))) if count else 0
    return with_heads(shapes, options, groups * options.u)


def _frod_params(shapes, options, ctx) -> int:
    """A scale per input (lambda_l) and the sparse off-diagonal entries of the shared in x in rotation."""
    from ..shapes import per_module

    def one(m):
        d = m.d_in
        nnz = min(int(d * d * options.sparse_rate), d * (d - 1))
        if options.sparse_rate > 0 and d * (d - 1) > 0:
            nnz = max(1, nnz)
        return d + nnz

    return per_module(shapes, options, "FROD", one)

SPECS = [
    MethodSpec(
        name="vera",
        title="VeRA",
        family="shared",
        summary="One pair of frozen random matrices for all layers; only two scaling vectors per layer train.",
        options=VeraOptions,
        apply=peft_apply("VeraConfig", targets_mapping=_mapping("VERA")),
        trades=Trades("low", "lowest (~10x fewer than LoRA)", "fast", SHARED_TRADES_NOTE),
        peft_type="VERA",
        params=_vera_params(),
        memory=MemoryModel(per_adapter=low_rank(input_factor=0, copies=1)),
    ),
    MethodSpec(
        name="pvera",
        title="PVeRA",
        family="shared",
        summary="Probabilistic VeRA: the shared projection's scaling vectors are learned distributions.",
        options=PveraOptions,
        apply=peft_apply("PveraConfig", targets_mapping=_mapping("PVERA")),
        trades=Trades("low", "lowest", "fast", "moves the loss slowly; a high learning rate helps"),
        barely_learns=True,
        peft_type="PVERA",
        params=_vera_params(2),
        memory=MemoryModel(per_adapter=low_rank(rank_factor=4)),
    ),
    MethodSpec(
        name="vblora",
        title="VB-LoRA",
        family="shared",
        summary="LoRA matrices assembled from a shared bank of vectors by learned top-k selection.",
        options=VBLoraOptions,
        apply=peft_apply("VBLoRAConfig", extra=_vblora_extra, targets_mapping=_mapping("VBLORA")),
        trades=Trades("low", "lowest (bank + logits)", "medium", "tiny checkpoints; vector_length must divide widths"),
        peft_type="VBLORA",
        params=_vblora_params,
        memory=MemoryModel(per_adapter=low_rank(input_factor=0, copies=1)),
    ),
    MethodSpec(
        name="randlora",
        title="RandLoRA",
        family="shared",
        summary="Full-rank update from many frozen random low-rank bases with learned diagonal scalings.",
        options=RandLoraOptions,
        apply=peft_apply("RandLoraConfig", targets_mapping=_mapping("RANDLORA")),
        trades=Trades("medium", "low", "medium", "full-rank update at LoRA-like parameter counts"),
        peft_type="RANDLORA",
        params=_randlora_params,
        memory=MemoryModel(per_adapter=low_rank(rank_factor=0, weights_if_grad=1)),
    ),
    MethodSpec(
        name="unilora",
        title="Uni-LoRA",
        family="shared",
        summary="Every layer's LoRA matrices are projected from one small trainable vector.",
        options=UniLoraOptions,
        apply=peft_apply("UniLoraConfig", targets_mapping=_mapping("UNILORA")),
        trades=Trades("low", "lowest (one vector)", "fast", "moves the loss slowly in few steps"),
        barely_learns=True,
        quantized_base=False,
        peft_type="UNILORA",
        params=_unilora_params,
    ),
    MethodSpec(
        name="tinylora",
        title="TinyLoRA",
        family="shared",
        summary="A tiny trainable vector per layer group, projected through the weights' frozen SVD.",
        options=TinyLoraOptions,
        apply=peft_apply("TinyLoraConfig", targets_mapping=_mapping("TINYLORA")),
        trades=Trades("low", "lowest (tens to thousands of parameters)", "fast",
                      "meant for reinforcement-style fine-tuning of reasoning"),
        quantized_base=False,
        barely_learns=True,
        peft_type="TINYLORA",
        params=_tinylora_params,
        memory=MemoryModel(per_adapter=low_rank(input_factor=0, rank_factor=2)),
    ),
    MethodSpec(
        name="frod",
        title="FRoD",
        family="shared",
        summary="Full-rank update from a shared basis and a sparse trainable rotation.",
        options=FrodOptions,
        apply=peft_apply("FrodConfig", fixed={"progressbar": False}, targets_mapping=_mapping("FROD")),
        trades=Trades("low", "lowest", "medium (decompositions at start)", "full-rank update, few parameters"),
        quantized_base=False,
        peft_type="FROD",
        params=_frod_params,
        memory=MemoryModel(per_adapter=low_rank(rank_factor=0, copies=1)),
    ),
]
