"""Full fine-tuning and freeze-tuning (train only chosen layers)."""
from __future__ import annotations

import re
from typing import Optional

from ._base import HEAD_NAMES, MethodSpec, Trades
from ._memory import MemoryModel
from ..schema import Options, field


class FullOptions(Options):
    pass


class FreezeOptions(Options):
    trainable_layers: int = field(
        2, "Train the last N transformer blocks (counted from the output side).", ge=0, le=1000
    )
    trainable_patterns: Optional[list[str]] = field(
        None, "Also train parameters whose name matches any of these regexes (e.g. 'norm', 'embed').",
    )
    train_head: bool = field(True, "Train the task head (classifier, QA span head, LM head).")


def _apply_full(model, options, ctx):
    for param in model.parameters():
        param.requires_grad_(True)
    return model


def _blocks(model):
    """The model's longest ModuleList: its stack of transformer blocks."""
    import torch

    lists = [(name, m) for name, m in model.named_modules() if isinstance(m, torch.nn.ModuleList)]
    if not lists:
        raise ValueError("method.freeze: found no stack of layers (nn.ModuleList) to unfreeze in this model")
    return max(lists, key=lambda item: len(item[1]))


def _apply_freeze(model, options, ctx):
    model.requires_grad_(False)
    name, blocks = _blocks(model)
    keep = [f"{name}.{i}." for i in range(max(0, len(blocks) - options.trainable_layers), len(blocks))]
    patterns = [re.compile(p) for p in options.trainable_patterns or ()]
    for pname, param in model.named_parameters():
        if (
            any(pname.startswith(k) for k in keep)
            or any(p.search(pname) for p in patterns)
            or (options.train_head and pname.split(".")[0] in HEAD_NAMES)
        ):
            param.requires_grad_(True)
    return model


def _full_params(shapes, options, ctx) -> int:
    return shapes.total


def _freeze_params(shapes, options, ctx) -> int:
    """Parameters of the last N blocks, of names matching the patterns, and of the head."""
    n_blocks = shapes.num_blocks
    keep = [f"{shapes.blocks}.{i}." for i in range(max(0, n_blocks - options.trainable_layers), n_blocks)]
    patterns = [re.compile(p) for p in options.trainable_patterns or ()]
    return sum(
        numel for name, numel in shapes.parameters()
        if any(name.startswith(k) for k in keep) or any(p.search(name) for p in patterns)
        or (options.train_head and name.split(".")[0] in HEAD_NAMES)
    )

def _freeze_trained(shapes, options) -> set:
    """Modules whose weights train: the last N blocks', the pattern-matched ones and the head."""
    n_blocks = shapes.num_blocks
    keep = [f"{shapes.blocks}.{i}." for i in range(max(0, n_blocks - options.trainable_layers), n_blocks)]
    patterns = [re.compile(p) for p in options.trainable_patterns or ()]
    return {m.name for m in shapes.modules
            if any(m.name.startswith(k) for k in keep) or any(p.search(m.name) for p in patterns)
            or (options.train_head and m.name.split(".")[0] in HEAD_NAMES)}


SPECS = [
    MethodSpec(
        name="full",
        title="Full fine-tuning",
        family="full",
        summary="Every weight trains; the reference every other method is measured against.",
        options=FullOptions,
        apply=_apply_full,
        trades=Trades("high", "all (100 %)", "baseline", "best quality ceiling; needs ~16 bytes/param with Adam"),
        kind="full",
        quantized_base=False,
        params=_full_params,
    ),
    MethodSpec(
        name="freeze",
        title="Freeze-tuning",
        family="full",
        summary="Only the last N blocks (and the head) train; the rest stay frozen.",
        options=FreezeOptions,
        apply=_apply_freeze,
        trades=Trades("medium", "medium (the chosen blocks)", "faster than full (no backward below)",
                      "good when only the top of the network needs to change"),
        kind="full",
        quantized_base=False,
        params=_freeze_params,
        memory=MemoryModel(trained=_freeze_trained),
        defaults={"training.learning_rate": 5e-5},  # fewer weights move: a little higher than full
    ),
]
