"""The LyCORIS family: Hadamard (LoHa) and Kronecker (LoKr) products of small factors."""
from __future__ import annotations

from ._base import AdapterOptions, MethodSpec, Trades, peft_apply
from ._memory import MemoryModel, low_rank
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


def _loha_params(shapes, options, ctx) -> int:
    """Two low-rank pairs per layer: 2 x r x (in + out)."""
    from ..shapes import per_module

    return per_module(shapes, options, "LOHA", lambda m: 2 * options.r * (m.d_in + m.d_out))


def _factorization(dimension: int, factor: int = -1) -> tuple[int, int]:
    """peft's LoKr split of a width into two factors (the most square one for factor -1)."""
    if factor > 0 and dimension % factor == 0:
        return factor, dimension // factor
    if factor == -1:
        factor = dimension
    m, n = 1, dimension
    length = m + n
    while m < n:
        new_m = m + 1
        while dimension % new_m != 0:
            new_m += 1
        new_n = dimension // new_m
        if new_m + new_n > length or new_m > factor:
            break
        m, n = new_m, new_n
    if m > n:
        n, m = m, n
    return m, n


def _lokr_params(shapes, options, ctx) -> int:
    """Kronecker factors w1 (a x c) and w2 (b x d), each full or low-rank as peft decides from r."""
    from ..shapes import per_module

    r = options.r

    def one(m):
        in_m, in_n = _factorization(m.d_in, options.decompose_factor)
        out_l, out_k = _factorization(m.d_out, options.decompose_factor)
        (a, b), (c, d) = (out_l, out_k), (in_m, in_n)
        use_w1 = not (options.decompose_both and r < max(a, c) / 2)
        use_w2 = not (r < max(b, d) / 2)
        n = a * c if use_w1 else r * (a + c)
        n += b * d if use_w2 else r * (b + d)
        return n

    return per_module(shapes, options, "LOKR", one)

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
        params=_loha_params,
        memory=MemoryModel(per_adapter=low_rank(rank_factor=0, weights_if_grad=1)),
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
        params=_lokr_params,
        memory=MemoryModel(per_adapter=low_rank(rank_factor=0, weights_if_grad=1)),
    ),
]
