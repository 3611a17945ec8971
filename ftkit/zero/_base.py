"""What a ZeRO preset is: a stage and the DeepSpeed settings that go with it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ZeroPreset:
    name: str
    stage: int
    summary: str
    #: DeepSpeed settings; "auto" values are filled in by the Transformers integration
    #: from the run's TrainingArguments (batch size, accumulation, clipping, precision).
    deepspeed: dict[str, Any] = field(default_factory=dict)


#: Settings every preset shares. ``train_batch_size`` is left out on purpose:
#: DeepSpeed derives it from the micro batch, accumulation and world size, and
#: an explicit value trips its consistency check when running on CPU.
COMMON: dict[str, Any] = {
    "train_micro_batch_size_per_gpu": "auto",
    "gradient_accumulation_steps": "auto",
    "gradient_clipping": "auto",
    "bf16": {"enabled": "auto"},
    "fp16": {"enabled": "auto", "loss_scale": 0, "initial_scale_power": 16, "loss_scale_window": 1000,
             "hysteresis": 2, "min_loss_scale": 1},
    "steps_per_print": 1_000_000,
    "wall_clock_breakdown": False,
}
