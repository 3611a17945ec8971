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

from typing import Any, Iterable, Optional

from .architectures import SUPPORTED, UnsupportedModel, shapes_for  # noqa: F401
from .configs import (ASSETS, MODEL_CONFIGS, builtin_tokenizer, config_source, load_config,  # noqa: F401
                      shipped_config_path, shipped_models, special_ids_for)
from .described import Module, Shapes
from .parts import HEAD_NAMES, SAVED_HEADS, divisor_up_to, is_head  # noqa: F401
from .peft_targets import PEFT_TARGETS, default_targets, mapping_key  # noqa: F401


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
