"""Names and small numbers shared by the described model (``ftkit.shapes``) and the real one (``methods._shapes``)."""
from __future__ import annotations

#: classic task-head names, as transformers names the heads' modules
HEAD_NAMES = ("classifier", "score", "qa_outputs", "lm_head")
#: heads peft trains in full (modules_to_save) for each model kind
SAVED_HEADS = {"seq_cls": ("classifier", "score"), "token_cls": ("classifier", "score"), "qa": ("qa_outputs",)}


def is_head(name: str) -> bool:
    """Whether a module's dotted name passes through a task head."""
    return bool(set(name.split(".")) & set(HEAD_NAMES))


def divisor_up_to(n: int, cap: int) -> int:
    """The largest divisor of ``n`` that is at most ``cap``."""
    return max(d for d in range(1, min(n, cap) + 1) if n % d == 0)
