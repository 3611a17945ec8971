"""Checks that need the file system, run before a run folder is created.

The config's own validation catches wrong values; these catch a world that
does not match it: missing data files or columns, rows the task cannot learn
from, a model folder that is not there, a Hub model that cannot be fetched
offline, a logger that is not installed, adapter targets the model does not
have, a runs folder that cannot be written. A run that fails here leaves
nothing behind.
"""
from __future__ import annotations

import importlib.util
import os
import re
import tempfile
from typing import Optional

from . import models
from .data import load_rows
from .errors import ConfigError
from .store import runs_root

#: report_to name -> the modules of which one must be importable (transformers' own test)
LOGGERS = {"tensorboard": ("tensorboard", "tensorboardX"), "mlflow": ("mlflow",), "wandb": ("wandb",)}


def offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_hub(name: str, revision: Optional[str] = None) -> None:
    """A Hub id while offline must be in the local cache already."""
    if models.is_builtin(name) or os.path.isdir(os.path.expanduser(name)) or not offline():
        return
    from huggingface_hub import constants, try_to_load_from_cache

    found = try_to_load_from_cache(name, "config.json", revision=revision)
    if not isinstance(found, str):
        raise ConfigError([("model.name_or_path", (
            f"{name!r} is a Hub id, but HF_HUB_OFFLINE is set and it is not in the local cache "
            f"({constants.HF_HUB_CACHE}); download it once where there is network (`hf download {name}`), "
            "unset HF_HUB_OFFLINE, or give a local folder holding the model"
        ))])


def check_loggers(report_to: list[str]) -> None:
    for name in report_to:
        if not any(importlib.util.find_spec(m) for m in LOGGERS.get(name, (name,))):
            raise ConfigError([("training.report_to", (
                f"{name} is not installed; `pip install {LOGGERS.get(name, (name,))[0]}`, or remove {name} from report_to"
            ))])


def module_names(config) -> dict[str, str]:
    """Every module of the config's model -> its class name, built on the meta device (no weights read)."""
    import torch
    import transformers

    from .engine.loading import AUTO_CLASSES

    source = models.resolve(config.model_name)
    model_config = transformers.AutoConfig.from_pretrained(
        source, revision=config.model.revision, trust_remote_code=config.model.trust_remote_code)
    auto = getattr(transformers, AUTO_CLASSES[config.task_spec.model_kind])
    with torch.device("meta"):
        model = auto.from_config(model_config, trust_remote_code=config.model.trust_remote_code)
    return {name: type(module).__name__ for name, module in model.named_modules() if name}


def check_targets(config) -> None:
    """``target_modules`` must name modules the model has (as peft matches them: suffix, or a full regex)."""
    options = config.method_options
    targets = getattr(options, "target_modules", None)
    if not targets or targets == "all-linear":
        return
    try:
        names = module_names(config)
    except Exception:  # noqa: BLE001 - a model the meta device cannot build: loading will say why
        return
    if isinstance(targets, str):
        missing = [] if any(re.fullmatch(targets, n) for n in names) else [targets]
    else:
        missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if not missing:
        return
    adaptable = ("Linear", "Conv1D", "Conv1d", "Conv2d", "Embedding")
    layers = sorted({n.rsplit(".", 1)[-1] for n, kind in names.items()
                     if kind.endswith(adaptable) and "Rotary" not in kind and not n.rsplit(".", 1)[-1].isdigit()})
    raise ConfigError([(f"method.{config.method.name}.target_modules", (
        f"{', '.join(repr(m) for m in missing)} {'is not a module' if len(missing) == 1 else 'are not modules'} "
        f"of {config.model_name}; its linear and embedding layers are named {', '.join(layers)}. Use some of "
        "these, 'all-linear', or leave it empty for peft's default"
    ))])


def preflight(config) -> None:
    """Raise ConfigError naming the field if ``config`` cannot start here."""
    try:
        models.check(config.model_name)
    except ValueError as exc:
        raise ConfigError([("model.name_or_path", str(exc))]) from None
    check_hub(config.model_name, config.model.revision)
    check_loggers(config.training.report_to)
    spec = config.method_spec
    if spec.needs_cuda:
        import torch  # only for the few methods peft runs on CUDA alone

        if not torch.cuda.is_available():
            raise ConfigError([("method.name", f"{spec.title} runs only on a CUDA GPU in peft; none is visible here. "
                                               "Use lora, or qlora for a quantized base")])
    load_rows(config)
    check_targets(config)
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
