"""Multiplicative updates that rotate or reflect the frozen weights: OFT, BOFT, HRA, RoAd, PSOFT, OSF."""
from __future__ import annotations

from typing import Literal, Optional, Union

from ._base import AdapterOptions, MethodSpec, Trades, peft_apply
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
    ),
]
