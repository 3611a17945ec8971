"""Sizes read off a loaded model, for options that must divide its layer widths."""
from __future__ import annotations

import math
from typing import Any

from ..shapes.parts import divisor_up_to, is_head  # noqa: F401  (one home for both)


def linear_gcd(model: Any) -> int:
    """Greatest common divisor of the in/out widths of the model's linear layers, task heads left out."""
    import torch

    found = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not is_head(name):
            found = math.gcd(found, math.gcd(module.in_features, module.out_features))
    return found or 1


def num_layers(model: Any) -> int:
    config = getattr(model, "config", None)
    for key in ("num_hidden_layers", "num_layers", "n_layer"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return 1


def linear_pattern(model: Any) -> str:
    """A regex matching every linear layer outside the task heads, by full name."""
    import re

    import torch

    names = [name for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) and not is_head(name)]
    return "^(" + "|".join(re.escape(n) for n in names) + ")$"
