"""Multiplicative updates that rotate or reflect the frozen weights: OFT, BOFT, HRA, RoAd, PSOFT, OSF."""
from __future__ import annotations

from typing import Literal, Optional, Union

from ._base import AdapterOptions, MethodSpec, Trades, peft_apply
from ._memory import MemoryModel, Saved, adapter_input, low_rank
from ._shapes import linear_pattern
from ..schema import field


def _mapping(name: str) -> str:
    return f"TRANSFORMERS_MODELS_TO_{name}_TARGET_MODULES_MAPPING"


class OFTOptions(AdapterOptions):
    oft_block_size: int = field(32, "Size of each orthogonal block; must divide the layers' input width. "
                                "Larger blocks: more parameters and expressivity.", ge=2, le=4096)
    module_dropout: float = field(0.0, "Multiplicative dropout: blocks randomly set to identity while training.",
                                  ge=0, lt=1)
    coft: bool = field(False, "Constrained OFT: keep the rotation within eps of the identity.")
    eps: float = field(6e-5, "How far COFT may rotate (only with coft).", gt=0, advanced=True)
    block_share: bool = field(False, "Share one rotation between all blocks of a layer.", advanced=True)
    use_cayley_neumann: bool = field(True, "Approximate the Cayley transform by a Neumann series: faster, "
                                     "slightly less orthogonal.", advanced=True)


class BOFTOptions(AdapterOptions):
    boft_block_size: int = field(4, "Size of each butterfly block; must divide the layers' input width.",
                                 ge=2, le=4096)
    boft_n_butterfly_factor: int = field(1, "Butterfly factors multiplied together (1 is plain block-diagonal "
                                         "OFT); more mixes more channels. CPU runs force 1.", ge=1, le=16)
    boft_dropout: float = field(0.0, "Multiplicative dropout: blocks randomly set to identity while training.",
                                ge=0, lt=1)


class HRAOptions(AdapterOptions):
    r: int = field(8, "Householder reflections chained per layer (an even number trains best).", ge=1, le=1024)
    apply_GS: bool = field(False, "Gram-Schmidt-orthogonalise the reflection vectors.")


class RoadOptions(AdapterOptions):
    variant: Literal["road_1", "road_2", "road_4"] = field(
        "road_1", "Parameters per output pair: road_1 fewest, road_2 and road_4 twice and four times as many.")
    group_size: int = field(64, "Elements grouped into 2D pairs for rotation; even, and must divide the "
                            "layers' output width.", ge=2, le=4096)


class PsoftOptions(AdapterOptions):
    r: int = field(16, "Size of the r x r transformation between the principal factors A and B.", ge=1, le=4096)
    psoft_alpha: float = field(16, "Scale of the update, as LoRA's alpha.", gt=0)
    psoft_dropout: float = field(0.0, "Dropout on the adapter's input.", ge=0, lt=1)
    ab_svd_init: Literal["psoft_init", "pissa_init"] = field(
        "psoft_init", "Principal-subspace initialisation: strictly orthogonal (psoft_init) or PiSSA's symmetric one.")
    psoft_orth: bool = field(True, "Keep the transformation orthogonal (Cayley); false: a free matrix.")
    psoft_mag_a: bool = field(True, "Learn a scaling vector on the input side of the transformation.")
    psoft_mag_b: bool = field(True, "Learn a scaling vector on the output side of the transformation.")


class OSFOptions(AdapterOptions):
    effective_rank: Optional[Union[int, float]] = field(
        None, "Top singular directions kept frozen (a count, or a fraction below 1); the rest train. "
        "Empty: half of each weight's rank.", gt=0,
    )


def _osf_extra(options, model, ctx):
    from peft.utils import constants

    if options.target_modules or ctx.model_type in constants.TRANSFORMERS_MODELS_TO_OSF_TARGET_MODULES_MAPPING:
        return {}
    return {"target_modules": linear_pattern(model)}  # every linear layer but the task head


def _oft_block(d_in: int, size: int) -> int:
    """peft's adjustment of a block size that does not divide the input width: the nearest divisor."""
    if d_in % size == 0 and size <= d_in:
        return size
    if size >= d_in:
        return d_in
    higher = size
    while higher <= d_in and d_in % higher != 0:
        higher += 1
    lower = size
    while lower > 1 and d_in % lower != 0:
        lower -= 1
    return lower if size - lower <= higher - size else higher


def _oft_params(shapes, options, ctx) -> int:
    """in / block_size blocks (one if shared), each storing the block_size x (block_size - 1) / 2 skew part."""
    from ..shapes import per_module

    def one(m):
        size = _oft_block(m.d_in, options.oft_block_size)
        blocks = 1 if options.block_share else m.d_in // size
        return blocks * (size * (size - 1) // 2)

    return per_module(shapes, options, "OFT", one)


def _boft_params(shapes, options, ctx) -> int:
    """Butterfly factors x (in / block_size) blocks of block_size², plus an output scale (out).

    peft's pure-PyTorch fallback (no CUDA kernel) forces the factor to 1; so is the default.
    """
    from ..shapes import per_module

    return per_module(shapes, options, "BOFT",
                      lambda m: options.boft_n_butterfly_factor * m.d_in * options.boft_block_size + m.d_out)


def _hra_params(shapes, options, ctx) -> int:
    from ..shapes import per_module

    return per_module(shapes, options, "HRA", lambda m: m.d_in * options.r)


def _road_params(shapes, options, ctx) -> int:
    """An angle and a scale per output pair (road_1), per output (road_2) or two per output (road_4)."""
    from ..shapes import per_module

    factor = {"road_1": 0.5, "road_2": 1, "road_4": 2}[options.variant]
    return per_module(shapes, options, "ROAD", lambda m: 2 * int(m.d_out * factor))


def _psoft_params(shapes, options, ctx) -> int:
    """The r x r transformation (its r(r-1)/2 skew part when orthogonal) and two optional r-vectors."""
    from ..shapes import per_module

    r = options.r
    one = (r * (r - 1) // 2 if options.psoft_orth else r * r) + r * options.psoft_mag_a + r * options.psoft_mag_b
    return per_module(shapes, options, "PSOFT", lambda m: one)


def _osf_trained_rank(options, min_dim: int) -> int:
    """k: the singular directions that train (all but ``effective_rank``; half by default)."""
    value = options.effective_rank
    if value is None:
        frozen = max(min_dim // 2, 0)
    else:
        rank = int(min_dim * value) if isinstance(value, float) and 0 < value <= 1 else int(value)
        frozen = max(min(min_dim, rank), 0)
    return min_dim - frozen


def _osf_saved(m, options, ctx, input_grad: bool = True) -> Saved:
    """peft's factored forward ``F.linear(F.linear(x, B), A)`` with ``A = [U_low S_low, -U0 S0]`` (out x 2k) and
    ``B = [V_low; V0]`` (2k x in), both built by ``torch.cat`` in every forward: it keeps x (B's gradient),
    the 2k-wide product h (A's), A itself (h's gradient) and B only when x needs a gradient."""
    k2 = 2 * _osf_trained_rank(options, min(m.d_in, m.d_out))
    first = adapter_input(m.d_in, 0.0, ctx, input_grad)
    b = 2 if ctx.autocast else ctx.adapter_bytes
    weights = (m.d_out * k2 + (k2 * m.d_in if input_grad else 0)) * ctx.adapter_bytes
    return Saved(first.extra + k2 * b, first.raw_input, weights)


def _osf_params(shapes, options, ctx) -> int:
    """The low singular part trains: U (out x k), S (k), V (k x in), k = min(in, out) - effective_rank."""
    from ..shapes import default_targets, with_heads

    if options.target_modules:
        mods = shapes.targeted(options.target_modules)
    elif default_targets("OSF", shapes.model_type):
        mods = shapes.targeted(default_targets("OSF", shapes.model_type))
    else:  # every linear layer but the task heads, as ``_osf_extra`` asks peft
        names = set(shapes.linear_pattern_names())
        mods = [m for m in shapes.linears if m.name in names]
    n = 0
    for m in mods:
        k = _osf_trained_rank(options, min(m.d_in, m.d_out))
        n += k * (m.d_out + m.d_in + 1)
    return with_heads(shapes, options, n)

def _oft_saved(m, options, ctx, input_grad: bool = True) -> Saved:
    """OFT rotates the input block by block: it keeps the input (for the rotation's gradient), the
    block-diagonal rotation and the Cayley-Neumann series' products (about 3.5 of them), d_in x block each."""
    block = _oft_block(m.d_in, options.oft_block_size)
    return Saved(0.0, True, 3.5 * m.d_in * block * ctx.adapter_bytes)


def _hra_weight_space(shapes, options, ctx) -> float:
    """HRA chains r Householder reflections into an in x in matrix (each step kept for backward) and
    multiplies the weight by it."""
    from ..shapes import targets_of

    mods = targets_of(shapes, options, "HRA")
    return sum((options.r + 1) * m.d_in * m.d_in + m.d_in * m.d_out for m in mods) * ctx.adapter_bytes


SPECS = [
    MethodSpec(
        name="oft",
        title="OFT",
        family="orthogonal",
        summary="Multiplies each weight by a learned block-diagonal orthogonal matrix (angles between neurons kept).",
        options=OFTOptions,
        apply=peft_apply("OFTConfig", targets_mapping=_mapping("OFT")),
        trades=Trades("low", "low", "medium", "keeps pre-trained knowledge well; good for subject-driven generation"),
        peft_type="OFT",
        params=_oft_params,
        memory=MemoryModel(per_adapter=_oft_saved),
    ),
    MethodSpec(
        name="boft",
        title="BOFT",
        family="orthogonal",
        summary="OFT with butterfly-factorised orthogonal matrices: dense rotations from few parameters.",
        options=BOFTOptions,
        apply=peft_apply("BOFTConfig", targets_mapping=_mapping("BOFT")),
        trades=Trades("low", "low", "slow on CPU (pure PyTorch fallback)", "needs CUDA for its fused kernel"),
        peft_type="BOFT",
        params=_boft_params,
        memory=MemoryModel(per_adapter=low_rank(input_factor=0, rank_factor=0, copies=2, weights=1, weights_if_grad=1)),
    ),
    MethodSpec(
        name="hra",
        title="HRA",
        family="orthogonal",
        summary="Householder reflection adaptation: a chain of r learned reflections rotates each weight.",
        options=HRAOptions,
        apply=peft_apply("HRAConfig", targets_mapping=_mapping("HRA")),
        trades=Trades("low", "lowest (r vectors per layer)", "medium", "bridges LoRA and OFT"),
        quantized_base=False,
        peft_type="HRA",
        params=_hra_params,
        memory=MemoryModel(per_adapter=low_rank(rank_factor=0), weight_space=_hra_weight_space),
    ),
    MethodSpec(
        name="road",
        title="RoAd",
        family="orthogonal",
        summary="Rotates pairs of output features by learned 2D angles and scales: very few parameters.",
        options=RoadOptions,
        apply=peft_apply("RoadConfig", targets_mapping=_mapping("ROAD")),
        trades=Trades("low", "lowest (a few vectors per layer)", "fast", "serves many adapters in one batch"),
        peft_type="ROAD",
        params=_road_params,
        memory=MemoryModel(per_adapter=low_rank(input_factor=0, rank_factor=0, out_factor=1, copies=1)),
    ),
    MethodSpec(
        name="psoft",
        title="PSOFT",
        family="orthogonal",
        summary="Orthogonal fine-tuning inside each weight's principal subspace (an r x r rotation).",
        options=PsoftOptions,
        apply=peft_apply("PsoftConfig", targets_mapping=_mapping("PSOFT")),
        trades=Trades("low", "lowest (r² per layer)", "medium (SVD at start)", "orthogonal updates at LoRA-like cost"),
        quantized_base=False,
        peft_type="PSOFT",
        params=_psoft_params,
        memory=MemoryModel(per_adapter=low_rank(input_factor=0, rank_factor=2)),
    ),
    MethodSpec(
        name="osf",
        title="OSF",
        family="orthogonal",
        summary="Orthogonal subspace fine-tuning: freezes each weight's top singular directions and trains the rest.",
        options=OSFOptions,
        apply=peft_apply("OSFConfig", extra=_osf_extra, targets_mapping=_mapping("OSF")),
        trades=Trades("high", "high (half of each weight by default)", "medium (SVD at start)",
                      "for continual learning: protects what earlier tasks rely on"),
        quantized_base=False,
        peft_type="OSF",
        params=_osf_params,
        memory=MemoryModel(per_adapter=_osf_saved),
    ),
]
