"""ZeRO stage 2: optimizer states and gradients sharded across ranks."""
from ._base import COMMON, ZeroPreset

SPECS = [ZeroPreset(
    name="zero2",
    stage=2,
    summary="Shards optimizer states and gradients; optimizer offload to CPU or NVMe optional.",
    deepspeed={**COMMON, "zero_optimization": {
        "stage": 2,
        "allgather_partitions": True,
        "allgather_bucket_size": 2e8,
        "overlap_comm": True,
        "reduce_scatter": True,
        "reduce_bucket_size": 5e8,
        "contiguous_gradients": True,
    }},
)]
