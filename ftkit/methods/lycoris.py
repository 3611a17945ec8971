"""The LyCORIS family: Hadamard (LoHa) and Kronecker (LoKr) products of small factors."""
from __future__ import annotations

from ._base import AdapterOptions, MethodSpec, Trades, peft_apply
from ..schema import field


class LycorisOptions(AdapterOptions):
    r: int = field(8, "Rank of each factor.", ge=1, le=4096)
    alpha: float = field(8, "Scale of the update: alpha / r.", gt=0)
    rank_dropout: float = field(0.0, "Dropout over the rank dimension while training.", ge=0, lt=1)
    module_dropout: float = field(0.0, "Chance of switching the whole adapter of a layer off for a step.",
                                  ge=0, lt=1)


class LoHaOptions(LycorisOptions):
    pass


class LoKrOptions(LycorisOptions):
    decompose_both: bool = field(False, "Also factor the left Kronecker matrix into two low-rank matrices.")
    decompose_factor: int = field(-1, "Size of the left Kronecker factor; -1 picks the most square split.",
                                  ge=-1, advanced=True)


SPECS = [
    MethodSpec(
        name="loha",
        title="LoHa",
        family="lycoris",
        summary="Update is the Hadamard product of two low-rank products: rank up to r² for 2x LoRA's parameters.",
        options=LoHaOptions,
        apply=peft_apply("LoHaConfig", targets_mapping="TRANSFORMERS_MODELS_TO_LOHA_TARGET_MODULES_MAPPING"),
        trades=Trades("low", "low (2x LoRA at the same r)", "fast", "more expressive than LoRA per parameter"),
        quantized_base=False,
        peft_type="LOHA",
    ),
    MethodSpec(
        name="lokr",
        title="LoKr",
        family="lycoris",
        summary="Update is a Kronecker product of a small matrix and a low-rank one.",
        options=LoKrOptions,
        apply=peft_apply("LoKrConfig", targets_mapping="TRANSFORMERS_MODELS_TO_LOKR_TARGET_MODULES_MAPPING"),
        trades=Trades("low", "lowest (Kronecker factors)", "fast", "very few parameters for a full-rank update"),
        quantized_base=False,
        peft_type="LOKR",
    ),
]
