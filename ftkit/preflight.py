"""Checks that need the file system, run before a run folder is created.

The config's own validation catches wrong values; these catch a world that
does not match it: missing data files or columns, a model folder that is not
there, a runs folder that cannot be written. A run that fails here leaves
nothing behind.
"""
from __future__ import annotations

import tempfile

from . import models
from .data import load_rows
from .errors import ConfigError
from .store import runs_root


def preflight(config) -> None:
    """Raise ConfigError naming the field if ``config`` cannot start here."""
    try:
        models.check(config.model_name)
    except ValueError as exc:
        raise ConfigError([("model.name_or_path", str(exc))]) from None
    spec = config.method_spec
    if spec.needs_cuda:
        import torch  # only for the few methods peft runs on CUDA alone

        if not torch.cuda.is_available():
            raise ConfigError([("method.name", f"{spec.title} runs only on a CUDA GPU in peft; none is visible here. "
                                               "Use lora, or qlora for a quantized base")])
    load_rows(config)
    root = runs_root(config.runs_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as exc:
        raise ConfigError([(
            "runs_dir",
            f"cannot write runs to {str(root)!r} ({exc.strerror}); choose another runs_dir or set FTKIT_RUNS_DIR",
        )]) from None
