"""ZeRO stage 0: plain data parallel through DeepSpeed (nothing sharded)."""
from ._base import COMMON, ZeroPreset

SPECS = [ZeroPreset(
    name="zero0",
    stage=0,
    summary="Data parallel: every rank keeps full parameters, gradients and optimizer states.",
    deepspeed={**COMMON, "zero_optimization": {"stage": 0}},
)]
