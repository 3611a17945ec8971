"""Updates learned in a transformed domain: FourierFT (Fourier), WaveFT (wavelets), C3A (circular convolution)."""
from __future__ import annotations

from typing import Literal, Optional

from ._base import AdapterOptions, MethodSpec, Trades, peft_apply
from ._memory import MemoryModel, Saved
from ._shapes import divisor_up_to, linear_gcd
from ..schema import field


def _mapping(name: str) -> str:
    return f"TRANSFORMERS_MODELS_TO_{name}_TARGET_MODULES_MAPPING"


class FourierFTOptions(AdapterOptions):
    n_frequency: int = field(1000, "Learnable spectral coefficients per layer (at most in x out).", ge=1)
    scaling: float = field(150.0, "Scale of the reconstructed update, like LoRA's alpha.", gt=0)
    random_loc_seed: int = field(777, "Seed of the randomly chosen frequency locations.", ge=0, advanced=True)


class WaveFTOptions(AdapterOptions):
    n_frequency: int = field(2592, "Learnable wavelet coefficients per layer (at most in x out).", ge=1)
    scaling: float = field(25.0, "Scale of the reconstructed update, like LoRA's alpha.", gt=0)
    wavelet_family: Literal["db1", "db2", "db3", "sym2", "sym3", "coif1"] = field(
        "db1", "Wavelet of the transform (db1 is Haar).")
    use_idwt: bool = field(True, "Reconstruct the update with the inverse wavelet transform (false: use the "
                           "coefficients directly, faster).", advanced=True)
    random_loc_seed: int = field(777, "Seed of the randomly chosen coefficient locations.", ge=0, advanced=True)


class C3AOptions(AdapterOptions):
    block_size: Optional[int] = field(
        None, "Size of the circulant blocks; must divide every adapted layer's widths. Parameters per layer: "
        "in x out / block_size. Empty: the greatest common divisor of the model's linear widths (up to 1024).",
        ge=1, le=8192,
    )


def _c3a_extra(options, model, ctx):
    if options.block_size:
        return {}
    return {"block_size": divisor_up_to(linear_gcd(model), 1024)}


def _spectral_saved(if_grad: float, always: float, indices: int, masks: int = 0):
    """A dense update rebuilt from coefficients each step: the layer's input, ``if_grad`` weight-sized
    matrices when the input needs a gradient (the update, kept by the matmul), ``always`` more (the inverse
    transform's intermediates), the coefficients' int64 indices (``indices`` rows) and ``masks`` bool masks
    over them."""

    def saved(m, options, ctx, input_grad: bool = True) -> Saved:
        w = (always + (if_grad if input_grad else 0.0)) * m.d_in * m.d_out * ctx.adapter_bytes
        return Saved(0.0, True, w + (indices * 8 + masks) * options.n_frequency)

    return saved


#: WaveFT (peft's ``get_delta_weight``): the coefficients are scattered into a padded dense spectrum, split into
#: four sub-bands and rebuilt by ``waverec2d``, a transposed convolution over the stacked bands (the stack,
#: weight-sized, is kept always); ``F.linear(x, delta_w)`` keeps the update only when x needs a gradient; the
#: indexing keeps the valid indices (two int64 rows) and the bool mask that filtered them.
_WAVEFT_SAVES = (1, 1, 2, 1)


def _n_frequency_params(mapping: str):
    def params(shapes, options, ctx) -> int:
        from ..shapes import per_module

        return per_module(shapes, options, mapping, lambda m: options.n_frequency)

    return params


def _c3a_params(shapes, options, ctx) -> int:
    """A block-circulant kernel per layer: in x out / block_size."""
    from ..shapes import divisor_up_to, per_module

    block = options.block_size or divisor_up_to(shapes.linear_gcd(), 1024)
    return per_module(shapes, options, "C3A", lambda m: m.d_in * m.d_out // block)

SPECS = [
    MethodSpec(
        name="fourierft",
        title="FourierFT",
        family="spectral",
        summary="Learns a few spectral coefficients per weight; the inverse Fourier transform gives the update.",
        options=FourierFTOptions,
        apply=peft_apply("FourierFTConfig", targets_mapping=_mapping("FOURIERFT")),
        trades=Trades("low", "lowest (n_frequency per layer)", "medium", "far fewer parameters than LoRA"),
        peft_type="FOURIERFT",
        params=_n_frequency_params("FOURIERFT"),
        memory=MemoryModel(per_adapter=_spectral_saved(1, 0, 2)),
    ),
    MethodSpec(
        name="waveft",
        title="WaveFT",
        family="spectral",
        summary="Learns sparse wavelet coefficients per weight; the inverse wavelet transform gives the update.",
        options=WaveFTOptions,
        apply=peft_apply("WaveFTConfig", targets_mapping=_mapping("WAVEFT")),
        trades=Trades("low", "lowest", "medium", "fine control of the parameter count"),
        peft_type="WAVEFT",
        params=_n_frequency_params("WAVEFT"),
        memory=MemoryModel(per_adapter=_spectral_saved(*_WAVEFT_SAVES)),
    ),
    MethodSpec(
        name="c3a",
        title="C3A",
        family="spectral",
        summary="Circular-convolution adapter: a block-circulant update computed with FFTs.",
        options=C3AOptions,
        apply=peft_apply("C3AConfig", extra=_c3a_extra, targets_mapping=_mapping("C3A")),
        trades=Trades("low", "low", "medium", "high-rank update; block_size sets the size"),
        peft_type="C3A",
        params=_c3a_params,
    ),
]
