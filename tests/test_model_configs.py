"""Where a model's config.json is read from: a Hub id found in the Hugging Face cache."""
from __future__ import annotations

import json

import huggingface_hub.constants
import pytest

from ftkit import shapes


def test_a_hub_id_in_the_cache_is_read_from_its_snapshot(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--acme--tiny-llama"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    for commit, layers in (("old999", 1), ("abc123", 3)):  # refs/main names the snapshot, not the newest file
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "config.json").write_text(json.dumps(
            {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": layers,
             "num_attention_heads": 4, "vocab_size": 100}))
    assert shapes.config_source("acme/tiny-llama") == repo / "snapshots" / "abc123" / "config.json"
    assert shapes.load_config("acme/tiny-llama")["num_hidden_layers"] == 3
    with pytest.raises(FileNotFoundError, match="not in the Hugging Face cache"):
        shapes.load_config("acme/never-downloaded")
    with pytest.raises(FileNotFoundError, match="not in the Hugging Face cache"):
        shapes.load_config("./no/such/folder")  # not a Hub id either: the same clear message
