"""Methods that train a sparse subset of existing weights: SHiRA, Super-Tuning and trainable tokens."""
from __future__ import annotations

from typing import Optional

from ._base import AdapterOptions, MethodSpec, Targets, Trades, peft_apply
from ._memory import MemoryModel, low_rank, no_adapters
from ..schema import Options, field


def _mapping(name: str) -> str:
    return f"TRANSFORMERS_MODELS_TO_{name}_TARGET_MODULES_MAPPING"


class ShiraOptions(AdapterOptions):
    r: int = field(32, "Sets the count of trainable entries per layer: r x (in + out), as many as LoRA at rank r.",
                   ge=1, le=4096)
    random_seed: int = field(0, "Seed of the random sparse mask.", ge=0, advanced=True)


class SupertuningOptions(AdapterOptions):
    sparsity: float = field(0.99, "Share of each weight's entries left frozen (0.99: 1 % train), chosen by "
                            "magnitude.", ge=0, lt=1)
    select_top: bool = field(True, "Train the largest-magnitude entries (false: the smallest).")
    r: Optional[int] = field(None, "Also add a LoRA of this rank on top (the 'Supra' hybrid); empty: sparse only.",
                             ge=1, le=4096)


class TrainableTokensOptions(Options):
    token_indices: list[int] = field(
        factory=list, help="Token ids whose embeddings train (the rest of the embedding stays frozen). Empty: the "
        "tokenizer's special tokens (e.g. chat-template markers).",
    )
    target_modules: Targets = field(None, "Embedding layer to adapt. Empty: the model's input embedding.")


def _token_extra(options, model, ctx):
    if options.token_indices:
        return {}
    ids = list(getattr(ctx.tokenizer, "all_special_ids", None) or ())
    if not ids:
        config = getattr(model, "config", None)
        ids = [getattr(config, k, None) for k in ("bos_token_id", "eos_token_id", "pad_token_id")]
    ids = sorted({i for i in ids if isinstance(i, int) and i >= 0})
    if not ids:
        raise ValueError("method.trainable_tokens: no special tokens found; set method.trainable_tokens.token_indices")
    return {"token_indices": ids}


def _embedding_trained(shapes, options) -> set:
    """Trainable tokens: the embedding's output needs a gradient (its rows train), nothing else's weights."""
    from ..shapes import targets_of

    mods = targets_of(shapes, options, None, kinds=("embedding",)) if options.target_modules else shapes.embeddings[:1]
    return {m.name for m in mods}


def _shira_params(shapes, options, ctx) -> int:
    from ..shapes import per_module

    return per_module(shapes, options, "SHIRA", lambda m: options.r * (m.d_in + m.d_out))


def _supertuning_params(shapes, options, ctx) -> int:
    """int(in x out x (1 - sparsity)) chosen entries per layer, plus the optional LoRA of rank r."""
    from ..shapes import per_module

    return per_module(shapes, options, "SUPERTUNING", lambda m: int(m.d_in * m.d_out * (1 - options.sparsity))
                      + (options.r * (m.d_in + m.d_out) if options.r else 0))


def _tokens_params(shapes, options, ctx) -> int:
    """A row of the input embedding per chosen token (the tokenizer's special tokens by default)."""
    ids = set(options.token_indices or shapes.special_ids)
    embed = shapes.embeddings[0]
    if options.target_modules:
        found = shapes.targeted(options.target_modules, ("embedding",), skip_heads=False)
        embed = found[0] if found else embed
    # peft sets up no modules_to_save for this method: a classification head stays frozen
    return len(ids) * embed.d_out

SPECS = [
    MethodSpec(
        name="shira",
        title="SHiRA",
        family="sparse",
        summary="Sparse high-rank adapter: trains a fixed random ~1-2 % of each weight's entries directly.",
        options=ShiraOptions,
        apply=peft_apply("ShiraConfig", targets_mapping=_mapping("SHIRA")),
        trades=Trades("medium", "low (LoRA-sized)", "fast", "switches adapters quickly; little concept loss"),
        peft_type="SHIRA",
        params=_shira_params,
        memory=MemoryModel(per_adapter=low_rank(rank_factor=4, out_factor=2, copies=2, weights=1)),
    ),
    MethodSpec(
        name="supertuning",
        title="Super-Tuning",
        family="sparse",
        summary="Trains the largest-magnitude 1 % of each weight's entries, optionally plus a LoRA.",
        options=SupertuningOptions,
        apply=peft_apply("SupertuningConfig", targets_mapping=_mapping("SUPERTUNING")),
        trades=Trades("medium", "low (1 - sparsity)", "fast", "no calibration pass"),
        quantized_base=False,
        peft_type="SUPERTUNING",
        params=_supertuning_params,
        memory=MemoryModel(per_adapter=low_rank(rank=lambda o: o.r or 0, weights_if_grad=1)),
    ),
    MethodSpec(
        name="trainable_tokens",
        title="Trainable tokens",
        family="sparse",
        summary="Trains the embeddings of chosen tokens only, e.g. newly added chat-template tokens.",
        options=TrainableTokensOptions,
        apply=peft_apply("TrainableTokensConfig", extra=_token_extra, targets_mapping=None),
        trades=Trades("low", "lowest (a few embedding rows)", "fast", "teaches new tokens; nothing else changes"),
        model_kinds=frozenset({"causal_lm", "seq2seq", "seq_cls"}),
        why_not={k: "peft's token-classification and QA wrappers fail to set up trainable tokens (they expect "
                 "modules_to_save, which this method has not)" for k in ("token_cls", "qa")},
        peft_type="TRAINABLE_TOKENS",
        params=_tokens_params,
        memory=MemoryModel(trained=_embedding_trained, adapted=no_adapters, saves_head=False),
    ),
]
