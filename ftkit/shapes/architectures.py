"""How each described architecture lays out its modules, from its config.json alone."""
from __future__ import annotations

from .described import Module, Shapes

LLAMA_LIKE = {"llama": "Llama", "mistral": "Mistral", "qwen2": "Qwen2", "phi3": "Phi3", "gemma": "Gemma",
              "gemma2": "Gemma2"}
#: tie_word_embeddings when config.json leaves it out (each config class's default)
TIE_DEFAULT = {"llama": False, "mistral": False, "qwen2": False, "phi3": False, "gemma": True, "gemma2": True,
               "phi3small": True, "bert": True, "t5": True}
#: head_dim when config.json leaves it out and the config class does not derive it from hidden / heads
HEAD_DIM_DEFAULT = {"gemma": 256, "gemma2": 256}
#: question-answering models whose base model transformers names "transformer" instead of "model"
QA_BASE_PREFIX = {"llama": "transformer", "qwen2": "transformer"}
QA_TYPES = ("llama", "mistral", "qwen2", "bert")
SUPPORTED = tuple(LLAMA_LIKE) + ("phi3small", "bert", "t5")


def _lin(name, d_in, d_out, bias=False, tied=False):
    return Module(name, "linear", "Linear", d_in, d_out, bias=bias, tied=tied)


def _head(kind: str, prefix_hidden: int, num_labels: int, family: str) -> list[Module]:
    """The task head of a decoder (llama-like) model."""
    if kind == "seq_cls":
        return [_lin("score", prefix_hidden, num_labels, bias=False)]
    if kind == "token_cls":
        return [_lin("score", prefix_hidden, num_labels, bias=True)]
    if kind == "qa":
        return [_lin("qa_outputs", prefix_hidden, 2, bias=True)]
    return []


def _llama_like(c: dict, kind: str, num_labels: int) -> Shapes:
    mt = c["model_type"]
    cls = LLAMA_LIKE[mt]
    h, n = c["hidden_size"], c["num_hidden_layers"]
    nh = c["num_attention_heads"]
    nkv = c.get("num_key_value_heads") or nh
    hd = c.get("head_dim") or HEAD_DIM_DEFAULT.get(mt) or h // nh
    inter = c["intermediate_size"]
    vocab = c["vocab_size"]
    tied = c.get("tie_word_embeddings", TIE_DEFAULT[mt])
    attn_bias = bool(c.get("attention_bias", False))
    mlp_bias = bool(c.get("mlp_bias", False))
    norm = f"{cls}RMSNorm"
    base = QA_BASE_PREFIX.get(mt, "model") if kind == "qa" else "model"
    mods = [Module(f"{base}.embed_tokens", "embedding", "Embedding", vocab, h)]
    for i in range(n):
        p = f"{base}.layers.{i}"
        if mt == "phi3":
            mods.append(_lin(f"{p}.self_attn.o_proj", nh * hd, h))
            mods.append(_lin(f"{p}.self_attn.qkv_proj", h, (nh + 2 * nkv) * hd))
            mods.append(_lin(f"{p}.mlp.gate_up_proj", h, 2 * inter))
            mods.append(_lin(f"{p}.mlp.down_proj", inter, h))
        else:
            qkv_bias = True if mt == "qwen2" else attn_bias
            mods.append(_lin(f"{p}.self_attn.q_proj", h, nh * hd, qkv_bias))
            mods.append(_lin(f"{p}.self_attn.k_proj", h, nkv * hd, qkv_bias))
            mods.append(_lin(f"{p}.self_attn.v_proj", h, nkv * hd, qkv_bias))
            mods.append(_lin(f"{p}.self_attn.o_proj", nh * hd, h, attn_bias and mt != "qwen2"))
            mods.append(_lin(f"{p}.mlp.gate_proj", h, inter, mlp_bias))
            mods.append(_lin(f"{p}.mlp.up_proj", h, inter, mlp_bias))
            mods.append(_lin(f"{p}.mlp.down_proj", inter, h, mlp_bias))
        norms = ["input_layernorm", "post_attention_layernorm"]
        if mt == "gemma2":
            norms += ["pre_feedforward_layernorm", "post_feedforward_layernorm"]
        mods += [Module(f"{p}.{nm}", "norm", norm, h, h) for nm in norms]
    mods.append(Module(f"{base}.norm", "norm", norm, h, h))
    if kind == "causal_lm":
        mods.append(_lin("lm_head", h, vocab, tied=tied))
    else:
        mods += _head(kind, h, num_labels, mt)
    return Shapes(mt, kind, h, n, nh, nkv, hd, inter, vocab, mods, num_labels=num_labels, tied=tied,
                  max_positions=c.get("max_position_embeddings", 0), blocks=f"{base}.layers", num_blocks=n)


def _phi3small(c: dict, kind: str, num_labels: int) -> Shapes:
    h, n = c["hidden_size"], c["num_hidden_layers"]
    nh = c["num_attention_heads"]
    nkv = c.get("num_key_value_heads") or nh
    hd = h // nh
    inter = c["ff_intermediate_size"]
    vocab = c["vocab_size"]
    tied = c.get("tie_word_embeddings", True)
    mods = [Module("model.embed_tokens", "embedding", "Embedding", vocab, h)]
    for i in range(n):
        p = f"model.layers.{i}"
        mods += [
            _lin(f"{p}.self_attn.query_key_value", h, (nh + 2 * nkv) * hd, True),
            _lin(f"{p}.self_attn.dense", h, h, True),
            _lin(f"{p}.mlp.up_proj", h, 2 * inter, True),
            _lin(f"{p}.mlp.down_proj", inter, h, True),
            Module(f"{p}.input_layernorm", "norm", "LayerNorm", h, h, bias=True),
            Module(f"{p}.post_attention_layernorm", "norm", "LayerNorm", h, h, bias=True),
        ]
    mods.append(Module("model.final_layernorm", "norm", "LayerNorm", h, h, bias=True))
    if kind == "causal_lm":
        mods.append(_lin("lm_head", h, vocab, tied=tied))
    else:
        mods += _head(kind, h, num_labels, "phi3small")
    return Shapes("phi3small", kind, h, n, nh, nkv, hd, inter, vocab, mods, num_labels=num_labels, tied=tied,
                  max_positions=c.get("max_position_embeddings", 0), blocks="model.layers", num_blocks=n)


def _bert(c: dict, kind: str, num_labels: int) -> Shapes:
    h, n = c["hidden_size"], c["num_hidden_layers"]
    nh = c["num_attention_heads"]
    inter = c["intermediate_size"]
    vocab = c["vocab_size"]
    pos = c.get("max_position_embeddings", 512)
    types = c.get("type_vocab_size", 2)
    e = "bert.embeddings"
    mods = [
        Module(f"{e}.word_embeddings", "embedding", "Embedding", vocab, h),
        Module(f"{e}.position_embeddings", "embedding", "Embedding", pos, h),
        Module(f"{e}.token_type_embeddings", "embedding", "Embedding", types, h),
        Module(f"{e}.LayerNorm", "norm", "LayerNorm", h, h, bias=True),
    ]
    for i in range(n):
        p = f"bert.encoder.layer.{i}"
        mods += [
            _lin(f"{p}.attention.self.query", h, h, True),
            _lin(f"{p}.attention.self.key", h, h, True),
            _lin(f"{p}.attention.self.value", h, h, True),
            _lin(f"{p}.attention.output.dense", h, h, True),
            Module(f"{p}.attention.output.LayerNorm", "norm", "LayerNorm", h, h, bias=True),
            _lin(f"{p}.intermediate.dense", h, inter, True),
            _lin(f"{p}.output.dense", inter, h, True),
            Module(f"{p}.output.LayerNorm", "norm", "LayerNorm", h, h, bias=True),
        ]
    if kind == "seq_cls":
        mods += [_lin("bert.pooler.dense", h, h, True), _lin("classifier", h, num_labels, True)]
    elif kind == "token_cls":
        mods.append(_lin("classifier", h, num_labels, True))
    elif kind == "qa":
        mods.append(_lin("qa_outputs", h, 2, True))
    else:  # the bare encoder (with its pooler)
        mods.append(_lin("bert.pooler.dense", h, h, True))
    return Shapes("bert", kind, h, n, nh, nh, h // nh, inter, vocab, mods, num_labels=num_labels, tied=False,
                  max_positions=pos, blocks="bert.encoder.layer", num_blocks=n)


def _t5(c: dict, kind: str, num_labels: int) -> Shapes:
    d = c.get("d_model", 512)
    ff = c.get("d_ff", 2048)
    nh = c.get("num_heads", 8)
    dkv = c.get("d_kv", 64)
    n_enc = c.get("num_layers", 6)
    n_dec = c.get("num_decoder_layers") or n_enc
    vocab = c.get("vocab_size", 32128)
    buckets = c.get("relative_attention_num_buckets", 32)
    gated = str(c.get("feed_forward_proj", "relu")).startswith("gated-")
    tied = True  # transformers 5 ties T5's LM head to the shared embedding whatever the config says
    inner = nh * dkv
    mods = [Module("shared", "embedding", "Embedding", vocab, d)]

    def attention(prefix: str, relative: bool) -> list[Module]:
        out = [_lin(f"{prefix}.{x}", d, inner) for x in ("q", "k", "v")] + [_lin(f"{prefix}.o", inner, d)]
        if relative:
            out.append(Module(f"{prefix}.relative_attention_bias", "embedding", "Embedding", buckets, nh))
        return out

    def ff_layer(prefix: str) -> list[Module]:
        wis = [_lin(f"{prefix}.DenseReluDense.wi_0", d, ff), _lin(f"{prefix}.DenseReluDense.wi_1", d, ff)] if gated \
            else [_lin(f"{prefix}.DenseReluDense.wi", d, ff)]
        return wis + [_lin(f"{prefix}.DenseReluDense.wo", ff, d),
                      Module(f"{prefix}.layer_norm", "norm", "T5LayerNorm", d, d)]

    for stack, n in (("encoder", n_enc), ("decoder", n_dec)):
        for i in range(n):
            p = f"{stack}.block.{i}.layer"
            mods += attention(f"{p}.0.SelfAttention", i == 0)
            mods.append(Module(f"{p}.0.layer_norm", "norm", "T5LayerNorm", d, d))
            if stack == "decoder":
                mods += attention(f"{p}.1.EncDecAttention", False)
                mods.append(Module(f"{p}.1.layer_norm", "norm", "T5LayerNorm", d, d))
                mods += ff_layer(f"{p}.2")
            else:
                mods += ff_layer(f"{p}.1")
        mods.append(Module(f"{stack}.final_layer_norm", "norm", "T5LayerNorm", d, d))
    mods.append(_lin("lm_head", d, vocab, tied=tied))
    return Shapes("t5", kind, d, n_enc, nh, nh, dkv, ff, vocab, mods, num_labels=num_labels, tied=tied,
                  max_positions=c.get("n_positions", 512), decoder_layers=n_dec, blocks="encoder.block",
                  num_blocks=n_enc)


BUILDERS = {**{k: _llama_like for k in LLAMA_LIKE}, "phi3small": _phi3small, "bert": _bert, "t5": _t5}


class UnsupportedModel(ValueError):
    pass


def shapes_for(config: dict, model_kind: str = "causal_lm", num_labels: int = 2,
               special_ids: tuple[int, ...] = ()) -> Shapes:
    """Describe the model ``config`` (a config.json dict) with the head for ``model_kind``."""
    mt = config.get("model_type")
    if mt not in BUILDERS:
        raise UnsupportedModel(
            f"ftkit cannot describe model_type {mt!r} from its config alone; described: {', '.join(SUPPORTED)}")
    if mt == "t5" and model_kind != "seq2seq":
        raise UnsupportedModel(f"ftkit describes t5 as a seq2seq model only, not {model_kind}")
    if mt != "t5" and model_kind == "seq2seq":
        raise UnsupportedModel(f"{mt} is not an encoder-decoder model; it has no seq2seq head")
    if model_kind == "qa" and mt not in QA_TYPES:
        raise UnsupportedModel(f"transformers has no question-answering head for {mt}")
    if mt == "bert" and model_kind == "causal_lm":
        raise UnsupportedModel("bert is an encoder; it has no causal LM head here")
    shapes = BUILDERS[mt](config, model_kind, num_labels)
    shapes.config = dict(config)
    if not special_ids:
        ids = [config.get(k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")]
        special_ids = tuple(sorted({i for i in ids if isinstance(i, int) and i >= 0}))
    shapes.special_ids = tuple(special_ids)
    return shapes
