"""ZeRO stage 3: optimizer states, gradients and parameters sharded across ranks."""
from ._base import COMMON, ZeroPreset

SPECS = [ZeroPreset(
    name="zero3",
    stage=3,
    summary="Shards parameters too, so a model larger than one GPU fits; optimizer and parameter offload optional.",
    deepspeed={**COMMON, "zero_optimization": {
        "stage": 3,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "sub_group_size": 1e9,
        "reduce_bucket_size": "auto",
        "stage3_prefetch_bucket_size": "auto",
        "stage3_param_persistence_threshold": "auto",
        "stage3_max_live_parameters": 1e9,
        "stage3_max_reuse_distance": 1e9,
        # whole weights on save, so final/ loads without DeepSpeed
        "stage3_gather_16bit_weights_on_model_save": True,
    }},
)]
