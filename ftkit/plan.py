"""A run's training plan without its weights: the model built on the meta device.

``plan(config)`` needs only the model's ``config.json`` (shipped for the
Phi-3 models, so it works offline), builds the network with no memory
behind it, applies the method, and reports what would train: parameter
counts, which modules get adapters, steps, batch, launcher and DeepSpeed
settings. Users see what a Phi-3 QLoRA run is before downloading 7 GB.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from . import models
from .errors import ConfigError

MODEL_CONFIGS = Path(__file__).parent / "assets" / "model_configs"


def shipped_config_path(name: str) -> Path:
    return MODEL_CONFIGS / (name.replace("/", "--") + ".json")


def model_config(name: str, trust_remote_code: bool = False):
    """transformers config for ``name``: shipped copy, local folder, builtin or Hub."""
    from transformers import AutoConfig

    shipped = shipped_config_path(name)
    if shipped.is_file():
        data = json.loads(shipped.read_text())
        model_type = data.pop("model_type")
        try:
            return AutoConfig.for_model(model_type, **data)
        except (ValueError, KeyError):
            raise ConfigError([("model.name_or_path", f"{name} brings its own modelling code ({model_type}), "
                                "which transformers does not ship; `ftkit estimate` works from its config alone, "
                                "a plan needs the model's files and model.trust_remote_code")]) from None
    try:
        return AutoConfig.from_pretrained(models.resolve(name), trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise ConfigError([("model.name_or_path", f"cannot read the config of {name!r}: {exc}")]) from None


def _adapted_modules(model) -> list[str]:
    """Short names of the modules a peft method wrapped (q_proj, qkv_proj, ...)."""
    names = set()
    for name, module in model.named_modules():
        if hasattr(module, "base_layer"):
            names.add(name.rsplit(".", 1)[-1])
    return sorted(names)


def plan(config) -> dict[str, Any]:
    import torch
    import transformers

    from .engine.loading import AUTO_CLASSES
    from .engine.build import count_parameters
    from .methods import BuildContext

    transformers.logging.set_verbosity_error()
    task, method, t, d = config.task_spec, config.method_spec, config.training, config.distributed
    hf_config = model_config(config.model_name, config.model.trust_remote_code)
    auto = getattr(transformers, AUTO_CLASSES[task.model_kind])
    with torch.device("meta"):
        model = auto.from_config(hf_config, trust_remote_code=config.model.trust_remote_code)
        base_total = sum(p.numel() for p in model.parameters())
        architecture = type(model).__name__
        ctx = BuildContext(model_kind=task.model_kind, model_type=hf_config.model_type,
                           total_steps=t.max_steps or 1000)
        note = None
        try:
            model = method.apply(model, config.method_options, ctx)
        except Exception as exc:  # initialisations that read weights (PiSSA's SVD) cannot run on meta
            note = f"{method.title} needs real weights to initialise: {type(exc).__name__}"
    trainable, total = count_parameters(model)
    world = d.num_processes * d.num_nodes
    out: dict[str, Any] = {
        "model": config.model_name,
        "model_type": hf_config.model_type,
        "architecture": architecture,
        "layers": getattr(hf_config, "num_hidden_layers", None),
        "hidden_size": getattr(hf_config, "hidden_size", None),
        "base_params": base_total,
        "trainable_params": trainable if not note else None,
        "total_params": total,
        "trainable_pct": round(100 * trainable / total, 4) if total and not note else None,
        "adapted_modules": _adapted_modules(model),
        "method": method.name,
        "task": task.name,
        "bits": config.bits,
        "dtype": config.model.dtype if config.model.dtype != "auto" else "auto (bfloat16 on GPUs that have it, else float32)",
        "launcher": config.launcher,
        "world_size": world,
        "effective_batch": t.batch_size * t.gradient_accumulation_steps * world,
        "max_steps": t.max_steps,
        "num_epochs": None if t.max_steps else t.num_epochs,
        "max_seq_length": t.max_seq_length,
        "zero_stage": d.zero_stage,
    }
    if note:
        out["note"] = note
    if d.zero_stage is not None:
        from .zero import render

        out["deepspeed"] = render(config)
    return out


def plan_text(p: dict) -> str:
    def n(x):
        return "?" if x is None else f"{x / 1e9:.3f}B" if x >= 1e9 else f"{x / 1e6:.2f}M" if x >= 1e6 else f"{x:,}"

    lines = [
        f"{p['method']} on {p['task']}: {p['model']} ({p['model_type']}, {p['layers']} layers x {p['hidden_size']})",
        f"  parameters: {n(p['total_params'])} total, {n(p['trainable_params'])} trainable"
        + (f" ({p['trainable_pct']} %)" if p["trainable_pct"] is not None else ""),
        f"  adapters on: {', '.join(p['adapted_modules']) or 'none (all weights train)' }",
        f"  base weights: " + (f"{p['bits']}-bit (bitsandbytes)" if p["bits"] else p["dtype"]),
        f"  launcher {p['launcher']}, {p['world_size']} process(es), effective batch {p['effective_batch']}, "
        + (f"{p['max_steps']} steps" if p["max_steps"] else f"{p['num_epochs']} epoch(s)")
        + f", {p['max_seq_length']} tokens per example",
    ]
    if p["zero_stage"] is not None:
        lines.append(f"  DeepSpeed ZeRO-{p['zero_stage']}")
    if p.get("note"):
        lines.append(f"  note: {p['note']}")
    return "\n".join(lines)

