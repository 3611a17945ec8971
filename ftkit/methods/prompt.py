"""Methods that learn virtual tokens or key/value prefixes instead of touching weights.

Prompt tuning, prefix tuning, P-tuning, Cartridges, CPT and LLaMA-Adapter (adaption prompt).
"""
from __future__ import annotations

from typing import Literal, Optional

from ._base import MethodSpec, Trades, peft_apply
from ._memory import MemoryModel
from ._shapes import num_layers
from ..schema import Options, field

#: virtual tokens prepended to the input shift every position, which token labels and answer spans
#: do not follow in peft; key/value prefixes (prefix tuning, Cartridges) shift nothing and fit every head
PROMPT_KINDS = frozenset({"causal_lm", "seq2seq", "seq_cls"})
PROMPT_WHY_NOT = {
    "token_cls": "the virtual tokens shift every position but peft does not shift the token labels; "
    "use prefix_tuning or an adapter method such as lora",
    "qa": "the virtual tokens shift every position but peft does not shift the answer span; "
    "use prefix_tuning or an adapter method such as lora",
}
ALL_KINDS = frozenset({"causal_lm", "seq2seq", "seq_cls", "token_cls", "qa"})
NOT_MERGEABLE = "prompts live outside the weights, so there is nothing to merge"


def _hidden(model) -> int:
    config = model.config
    return getattr(config, "hidden_size", None) or getattr(config, "d_model", None) or 512


class VirtualTokens(Options):
    num_virtual_tokens: int = field(20, "Virtual tokens prepended to every input (they use up sequence length).",
                                    ge=1, le=1024)


class PromptTuningOptions(VirtualTokens):
    prompt_tuning_init: Literal["RANDOM", "TEXT", "SAMPLE_VOCAB"] = field(
        "RANDOM", "Initial prompt: random vectors, the embeddings of prompt_tuning_init_text, or embeddings of "
        "random vocabulary tokens.")
    prompt_tuning_init_text: Optional[str] = field(
        None, "Text whose token embeddings start the prompt (with TEXT), e.g. 'Classify the sentiment:'.")


def _prompt_extra(options, model, ctx):
    if options.prompt_tuning_init != "TEXT":
        return {}
    name = getattr(ctx.tokenizer, "name_or_path", None)
    if not options.prompt_tuning_init_text or not name:
        raise ValueError("method.prompt_tuning: TEXT initialisation needs prompt_tuning_init_text and a "
                         "tokenizer loaded from a name or folder")
    return {"tokenizer_name_or_path": name}


class PrefixTuningOptions(VirtualTokens):
    prefix_projection: bool = field(False, "Produce the prefixes through a two-layer MLP (more stable training, "
                                    "more parameters while training).")
    encoder_hidden_size: Optional[int] = field(None, "Width of that MLP; empty: the model's hidden size.", ge=8)


def _encoder_extra(options, model, ctx):
    return {"encoder_hidden_size": options.encoder_hidden_size or _hidden(model)}


class PTuningOptions(VirtualTokens):
    encoder_reparameterization_type: Literal["MLP", "LSTM"] = field(
        "MLP", "Network that produces the virtual token embeddings.")
    encoder_hidden_size: Optional[int] = field(None, "Width of that network; empty: the model's hidden size.", ge=8)
    encoder_num_layers: int = field(2, "Layers of that network.", ge=1, le=8)
    encoder_dropout: float = field(0.0, "Dropout inside that network.", ge=0, lt=1)


class CartridgeOptions(VirtualTokens):
    num_virtual_tokens: int = field(16, "Key/value cache positions learned per layer.", ge=1, le=4096)
    num_frozen_tokens: int = field(1, "Leading positions kept frozen as an attention sink (the paper uses 1).",
                                   ge=0, le=64)


class CPTOptions(Options):
    context_text: Optional[str] = field(
        None, "In-context example(s) the learned context starts from, e.g. 'Review: great film. Sentiment: "
        "positive'. Empty: num_virtual_tokens vocabulary tokens.")
    num_virtual_tokens: int = field(10, "Context length when context_text is empty.", ge=2, le=1024)
    opt_weighted_loss_type: Literal["none", "decay"] = field(
        "none", "Weight the loss of earlier in-context examples down exponentially ('decay').")
    opt_loss_decay_factor: float = field(1.0, "Factor of that decay per example.", gt=0, le=1, advanced=True)
    opt_projection_epsilon: float = field(0.1, "How far the input tokens' embeddings may move (scaled by "
                                          "sqrt(hidden/2048)).", gt=0)
    opt_projection_format_epsilon: float = field(0.1, "How far the template tokens' embeddings may move.", gt=0)


def _cpt_extra(options, model, ctx):
    vocab = model.get_input_embeddings().num_embeddings
    if options.context_text:
        if ctx.tokenizer is None:
            raise ValueError("method.cpt: context_text needs the model's tokenizer")
        ids = list(ctx.tokenizer(options.context_text, add_special_tokens=False)["input_ids"])
    else:
        step = max(1, vocab // (options.num_virtual_tokens + 1))
        ids = [step * (i + 1) % vocab for i in range(options.num_virtual_tokens)]
    # the context is one in-context example: its tokens tune within epsilon (type 2 = input) and the last is its
    # output (type 4), which makes the real inputs count as outputs that the loss is taken on
    return {"cpt_token_ids": ids, "cpt_mask": [1] * len(ids), "cpt_tokens_type_mask": [2] * (len(ids) - 1) + [4]}


class AdaptionPromptOptions(Options):
    adapter_len: int = field(10, "Learned prompt tokens per adapted layer.", ge=1, le=1024)
    adapter_layers: int = field(2, "Top layers that get adaption prompts (capped at the model's depth).", ge=1)


ADAPTION_TYPES = ("llama", "mistral", "gpt2")


def _adaption_extra(options, model, ctx):
    if ctx.model_type not in ADAPTION_TYPES:
        raise ValueError(f"method.adaption_prompt supports {', '.join(ADAPTION_TYPES)} models, not "
                         f"{ctx.model_type!r}; use prefix_tuning or lora")
    return {"adapter_layers": min(options.adapter_layers, num_layers(model))}


def _adaption_first_block(shapes, options) -> int:
    """Backward reaches only the top ``adapter_layers`` blocks."""
    return max(0, shapes.layers - options.adapter_layers)


def _adaption_saved(shapes, options, ctx) -> float:
    """Per token: each adapted layer's own attention over the adaption prompt keeps its softmax (fp32, and
    its cast to the 16-bit compute dtype), heads x adapter_len."""
    layers = min(options.adapter_layers, shapes.layers)
    return layers * shapes.heads * options.adapter_len * (4 + (2 if ctx.act_bytes == 2 else 0))


def _prompt_spec(name, title, summary, options, apply, trades, peft_type, **kw):
    kw.setdefault("model_kinds", PROMPT_KINDS)
    kw.setdefault("why_not", PROMPT_WHY_NOT)
    return MethodSpec(name=name, title=title, family="prompt", summary=summary, options=options, apply=apply,
                      trades=trades, kind="prompt", mergeable=False, peft_type=peft_type, **kw)


def _virtual(shapes, n: int) -> int:
    """Virtual tokens peft creates: doubled for encoder-decoder models (one set per stack)."""
    return n * (2 if shapes.model_kind == "seq2seq" else 1)


def _kv_dim(shapes) -> int:
    """Width of one layer's key (or value) prefix: peft shrinks it to the key/value heads on GQA models."""
    if "num_key_value_heads" in shapes.config or shapes.model_type in ("llama", "mistral", "qwen2", "phi3",
                                                                       "gemma", "gemma2", "phi3small"):
        return shapes.head_dim * shapes.kv_heads
    return shapes.hidden


def _prompt_tuning_params(shapes, options, ctx) -> int:
    from ..shapes import with_heads

    return with_heads(shapes, options, _virtual(shapes, options.num_virtual_tokens) * shapes.hidden)


def _prefix_params(shapes, options, ctx) -> int:
    """Key and value prefixes for every layer, or an embedding plus a two-layer MLP that makes them."""
    from ..shapes import with_heads

    tokens = _virtual(shapes, options.num_virtual_tokens)
    dim = _kv_dim(shapes)
    out = shapes.layers * 2 * dim
    if not options.prefix_projection:
        return with_heads(shapes, options, tokens * out)
    hidden = options.encoder_hidden_size or shapes.hidden
    return with_heads(shapes, options, tokens * dim + (dim + 1) * hidden + (hidden + 1) * out)


def _p_tuning_params(shapes, options, ctx) -> int:
    """Virtual token embeddings plus the prompt encoder (an MLP of three layers, or an LSTM and an MLP)."""
    from ..shapes import with_heads

    tokens = _virtual(shapes, options.num_virtual_tokens)
    dim, h = shapes.hidden, options.encoder_hidden_size or shapes.hidden
    n = tokens * dim
    if options.encoder_reparameterization_type == "MLP":
        n += (dim + 1) * h + (h + 1) * h + (h + 1) * dim
    else:
        for layer in range(options.encoder_num_layers):
            d_in = dim if layer == 0 else 2 * h
            n += 2 * (4 * h * (d_in + h) + 8 * h)
        n += (2 * h + 1) * 2 * h + (2 * h + 1) * dim
    return with_heads(shapes, options, n)


def _cartridge_params(shapes, options, ctx) -> int:
    from ..shapes import with_heads

    trainable = options.num_virtual_tokens - options.num_frozen_tokens
    return with_heads(shapes, options, trainable * shapes.layers * 2 * _kv_dim(shapes))


def _cpt_params(shapes, options, ctx) -> int:
    """A delta per context token; with context_text its token count is estimated from its words."""
    from ..shapes import with_heads

    tokens = options.num_virtual_tokens
    if options.context_text:
        tokens = max(1, round(len(options.context_text.split()) * 1.3))
    return with_heads(shapes, options, tokens * shapes.hidden)


def _adaption_params(shapes, options, ctx) -> int:
    from ..shapes import with_heads

    layers = min(options.adapter_layers, shapes.layers)
    return with_heads(shapes, options, layers * (options.adapter_len * shapes.hidden + 1))

SPECS = [
    _prompt_spec(
        "prompt_tuning", "Prompt tuning",
        "Learns the embeddings of a few virtual tokens prepended to the input; the model is untouched.",
        PromptTuningOptions, peft_apply("PromptTuningConfig", extra=_prompt_extra, targets_mapping=None),
        Trades("low", "lowest (tokens x hidden)", "fast",
               "strong only on large models; needs a high learning rate (~1e-2)"),
        "PROMPT_TUNING",
        params=_prompt_tuning_params,
        memory=MemoryModel(extra_tokens=lambda o: o.num_virtual_tokens),
    ),
    _prompt_spec(
        "prefix_tuning", "Prefix tuning",
        "Learns key/value prefixes for every attention layer.",
        PrefixTuningOptions, peft_apply("PrefixTuningConfig", extra=_encoder_extra, targets_mapping=None),
        Trades("low", "lowest (tokens x layers x 2 x hidden)", "fast", NOT_MERGEABLE),
        "PREFIX_TUNING",
        model_kinds=ALL_KINDS, why_not={},
        params=_prefix_params,
        memory=MemoryModel(kv_tokens=lambda o: o.num_virtual_tokens),
    ),
    _prompt_spec(
        "p_tuning", "P-tuning",
        "Virtual token embeddings produced by a small MLP or LSTM prompt encoder.",
        PTuningOptions, peft_apply("PromptEncoderConfig", extra=_encoder_extra, targets_mapping=None),
        Trades("low", "low (encoder while training)", "fast", NOT_MERGEABLE),
        "P_TUNING",
        params=_p_tuning_params,
        memory=MemoryModel(extra_tokens=lambda o: o.num_virtual_tokens),
    ),
    _prompt_spec(
        "cartridge", "Cartridges",
        "Learns key/value prefixes directly (a trainable KV cache, no encoder), e.g. to compress a document.",
        CartridgeOptions, peft_apply("CartridgeConfig", targets_mapping=None),
        Trades("low", "lowest (tokens x layers x 2 x hidden)", "fast", NOT_MERGEABLE),
        "CARTRIDGE",
        model_kinds=ALL_KINDS, why_not={},
        params=_cartridge_params,
        memory=MemoryModel(kv_tokens=lambda o: o.num_virtual_tokens),
    ),
    _prompt_spec(
        "cpt", "CPT",
        "Context-aware prompt tuning: refines in-context examples' embeddings within a small bound.",
        CPTOptions, peft_apply("CPTConfig", extra=_cpt_extra, targets_mapping=None,
                               own=("context_text", "num_virtual_tokens")),
        Trades("low", "lowest (context tokens x hidden)", "fast",
               "few-shot classification; each token moves only within epsilon, so the loss moves slowly"),
        "CPT",
        model_kinds=frozenset({"causal_lm"}),
        why_not={k: "peft's CPT supports causal language models only" for k in ("seq2seq", "seq_cls",
                                                                                 "token_cls", "qa")},
        barely_learns=True,
        params=_cpt_params,
        memory=MemoryModel(extra_tokens=lambda o: o.num_virtual_tokens,
                           per_token=lambda shapes, o, ctx: shapes.vocab * 4)  # its own loss: a second log-softmax,
    ),
    _prompt_spec(
        "adaption_prompt", "LLaMA-Adapter",
        "Adaption prompts with zero-initialised gated attention in the top layers (LLaMA-Adapter).",
        AdaptionPromptOptions, peft_apply("AdaptionPromptConfig", extra=_adaption_extra, targets_mapping=None),
        Trades("low", "lowest", "fast", "llama, mistral and gpt2 only; moves the loss slowly at first (zero gate)"),
        "ADAPTION_PROMPT",
        model_kinds=frozenset({"causal_lm"}),
        why_not={k: "LLaMA-Adapter works on decoder-only causal LMs (llama, mistral, gpt2) only"
                 for k in ("seq2seq", "seq_cls", "token_cls", "qa")},
        barely_learns=True,
        params=_adaption_params,
        memory=MemoryModel(first_block=_adaption_first_block, per_token=_adaption_saved),
    ),
]
