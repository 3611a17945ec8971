"""DeepSpeed ZeRO presets, one module per preset, and rendering a run's DeepSpeed config.

A preset holds the settings of one ZeRO stage; :func:`render` takes the one
``distributed.zero_preset`` names (else the stage's own) and adds what the run asks for (optimizer and
parameter offload, NVMe path). Values left as ``"auto"`` are resolved by the
Transformers DeepSpeed integration from the run's TrainingArguments, so batch
size, accumulation, clipping and precision are set in one place only.

Importing this package loads no torch or DeepSpeed.
"""
from __future__ import annotations

import copy
from typing import Any, Optional

from ..errors import ConfigError
from ..registry import Registry
from ._base import ZeroPreset

presets: Registry[ZeroPreset] = Registry(__name__, "ZeRO preset")

__all__ = ["ZeroPreset", "presets", "preset_for", "render"]


def preset_for(stage: int, name: Optional[str] = None) -> ZeroPreset:
    """The preset ``name`` (``distributed.zero_preset``), which must be of ``stage``; else the stage's own."""
    if name is not None:
        if name not in presets:
            raise ConfigError([("distributed.zero_preset", f"unknown ZeRO preset {name!r}{presets.suggest(name)}; "
                                                           f"known: {', '.join(presets.names())}")])
        preset = presets.get(name)
        if preset.stage != stage:
            raise ConfigError([("distributed.zero_preset", f"{name} is a ZeRO-{preset.stage} preset but "
                                f"distributed.zero_stage is {stage}: set zero_stage to {preset.stage}, or pick one "
                                f"of stage {stage}: {', '.join(p.name for p in presets if p.stage == stage)}")])
        return preset
    if f"zero{stage}" in presets:
        return presets.get(f"zero{stage}")
    for preset in presets:
        if preset.stage == stage:
            return preset
    raise ConfigError([("distributed.zero_stage", f"no ZeRO preset for stage {stage}; known: {presets.names()}")])


def _offload(device: str, nvme_path: Optional[str], pin: bool) -> dict:
    if device == "nvme":
        return {"device": "nvme", "nvme_path": nvme_path, "pin_memory": True}
    return {"device": "cpu", "pin_memory": pin}


def render(config, cuda: Optional[bool] = None) -> dict[str, Any]:
    """The DeepSpeed config (a dict) for a run with ``distributed.zero_stage`` set.

    ``cuda`` says whether the ranks run on GPUs; ``None`` asks torch (only
    inside the worker, where torch is loaded anyway).
    """
    d = config.distributed
    if d.zero_stage is None:
        raise ConfigError([("distributed.zero_stage", "is empty: this run does not use DeepSpeed")])
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    preset = preset_for(d.zero_stage, d.zero_preset)
    ds = copy.deepcopy(preset.deepspeed)
    zero = ds.setdefault("zero_optimization", {})
    zero["stage"] = d.zero_stage
    if d.offload_optimizer != "none":
        zero["offload_optimizer"] = _offload(d.offload_optimizer, d.nvme_path, pin=cuda)
        if cuda and config.training.optimizer in ("adamw_torch", "adamw_torch_fused"):
            # DeepSpeed's CPU Adam steps offloaded states several times faster than torch's
            ds["optimizer"] = {"type": "AdamW", "params": {
                "lr": "auto", "betas": "auto", "eps": "auto", "weight_decay": "auto"}}
        else:
            # keep the Trainer's torch optimizer: no cpu_adam build needed
            ds["zero_force_ds_cpu_optimizer"] = False
    if d.offload_params != "none":
        zero["offload_param"] = _offload(d.offload_params, d.nvme_path, pin=cuda)
    if "nvme" in (d.offload_optimizer, d.offload_params):
        ds["aio"] = {"block_size": 1048576, "queue_depth": 8, "thread_count": 1,
                     "single_submit": False, "overlap_events": True}
    return ds
