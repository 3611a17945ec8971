"""ZeRO stage 1: optimizer states sharded across ranks."""
from ._base import COMMON, ZeroPreset

SPECS = [ZeroPreset(
    name="zero1",
    stage=1,
    summary="Shards optimizer states across ranks (about 4x less optimizer memory on 8 GPUs with Adam).",
    deepspeed={**COMMON, "zero_optimization": {
        "stage": 1,
        "reduce_bucket_size": 5e8,
    }},
)]
