"""peft's default target modules per method and model type, as data (no peft import)."""
from __future__ import annotations

from typing import Optional

# ---- peft's default target modules, as data ---------------------------------------------------------
# peft.utils.constants.TRANSFORMERS_MODELS_TO_<NAME>_MAPPING for the architectures described here
# (peft 0.21). A model type missing from a mapping makes ftkit fall back to "all-linear".

_QV = {"llama": ["q_proj", "v_proj"], "mistral": ["q_proj", "v_proj"], "qwen2": ["q_proj", "v_proj"],
       "gemma": ["q_proj", "v_proj"], "gemma2": ["q_proj", "v_proj"], "bert": ["query", "value"], "t5": ["q", "v"]}
_QV_T5_ALL = {**{k: v for k, v in _QV.items() if k != "mistral"}, "t5": ["q", "k", "v", "o", "wi", "wo"]}
_ALL_PROJ = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "down_proj", "up_proj"]

PEFT_TARGETS: dict[str, dict[str, list[str]]] = {
    **{name: _QV for name in (
        "LORA", "ADAMSS", "BOFT", "C3A", "DEFT", "DELORA", "FOURIERFT", "FROD", "GLORA", "GRALORA", "HIRA", "HRA",
        "LILY", "LOHA", "LOKR", "MISS", "OFT", "PEANUT", "POLY", "PSOFT", "PVERA", "RANDLORA", "ROAD", "SHIRA",
        "SUPERTUNING", "TINYLORA", "UNILORA", "VERA", "WAVEFT")},
    "ADALORA": _QV_T5_ALL,
    "VBLORA": _QV_T5_ALL,
    "BEFT": {"llama": ["v_proj"], "mistral": ["v_proj"], "qwen2": ["v_proj"], "gemma": ["v_proj"],
             "gemma2": ["v_proj"], "bert": ["value"], "t5": ["v"]},
    "IA3": {"llama": ["k_proj", "v_proj", "down_proj"], "mistral": ["k_proj", "v_proj", "down_proj"],
            "qwen2": ["q_proj", "v_proj", "down_proj"], "gemma": ["q_proj", "v_proj", "down_proj"],
            "gemma2": ["q_proj", "v_proj", "down_proj"], "bert": ["key", "value", "output.dense"],
            "t5": ["k", "v", "wo"]},
    "IA3_FEEDFORWARD": {"llama": ["down_proj"], "mistral": ["down_proj"], "qwen2": ["down_proj"],
                        "gemma": ["down_proj"], "gemma2": ["down_proj"], "bert": ["output.dense"], "t5": ["wo"]},
    "LNTUNING": {"llama": ["input_layernorm", "post_attention_layernorm", "norm"],
                 "mistral": ["input_layernorm", "post_attention_layernorm", "norm"],
                 "qwen2": ["post_attention_layernorm"],
                 "gemma": ["input_layernorm", "post_attention_layernorm", "norm"],
                 "gemma2": ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm",
                            "post_feedforward_layernorm", "norm"],
                 "t5": ["layer_norm", "final_layer_norm"]},
    "OSF": {k: _ALL_PROJ for k in ("llama", "mistral", "qwen2", "gemma", "gemma2")},
}


def default_targets(name: str, model_type: str) -> Optional[list[str]]:
    """peft's default target list for mapping ``name`` (e.g. "LORA") and a model type, or None."""
    return PEFT_TARGETS.get(name, {}).get(model_type)


def mapping_key(mapping: Optional[str]) -> Optional[str]:
    """"TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING" -> "LORA" (short names pass through)."""
    if mapping is None:
        return None
    key = mapping
    if key.startswith("TRANSFORMERS_MODELS_TO_"):
        key = key[len("TRANSFORMERS_MODELS_TO_"):]
    for tail in ("_TARGET_MODULES_MAPPING", "_MODULES_MAPPING", "_MAPPING", "_TARGET_MODULES"):
        if key.endswith(tail):
            key = key[: -len(tail)]
            break
    return key
