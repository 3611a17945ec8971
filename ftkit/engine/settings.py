"""The memory and speed settings of ``training`` as the libraries take them.

``checkpointing_kwargs`` picks the checkpointing variant (``use_reentrant``); ``training_argument_extras`` maps
them onto ``TrainingArguments`` (only the fields the installed
Transformers has): ``torch_compile``, ``use_liger_kernel`` for ``fused_cross_entropy``. The adapter
dtype goes to peft through the method's ``BuildContext`` (``get_peft_model(autocast_adapter_dtype=...)``).
``data_collator`` swaps in DataCollatorWithFlattening for ``padding_free``. ``whatif.*`` settings never reach the run.
"""
from __future__ import annotations

import importlib.util


def checkpointing_kwargs(config) -> dict | None:
    """``gradient_checkpointing_kwargs`` for TrainingArguments: which torch.utils.checkpoint variant."""
    t = config.training
    if not t.gradient_checkpointing:
        return None
    return {"use_reentrant": bool(getattr(t, "gradient_checkpointing_reentrant", False))}


def training_argument_extras(config, args_cls) -> dict:
    t = config.training
    out = {}
    if t.gradient_checkpointing:  # Transformers 5 calls it activation checkpointing; 4.x gradient checkpointing
        out["activation_checkpointing_kwargs"] = out["gradient_checkpointing_kwargs"] = checkpointing_kwargs(config)
    if getattr(t, "torch_compile", False):
        out["torch_compile"] = True
    if getattr(t, "fused_cross_entropy", False):
        if importlib.util.find_spec("liger_kernel") is None:
            raise RuntimeError("training.fused_cross_entropy needs the liger-kernel package "
                               "(pip install liger-kernel); turn it off or install it")
        out["use_liger_kernel"] = True
    fields = getattr(args_cls, "__dataclass_fields__", {})
    return {k: v for k, v in out.items() if k in fields}


#: attention implementations that keep packed examples apart: eager, sdpa and flex through the mask that
#: masking_utils builds from position_ids (find_packed_sequence_indices), flash through the same position_ids
PACKED_ATTENTION = ("eager", "sdpa", "flex_attention", "flash_attention_2", "flash_attention_3")


def padding_free_refusal(model) -> str | None:
    """Why ``model`` would let packed examples attend to each other, or None when it keeps them apart."""
    import inspect
    import sys

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    impl = getattr(base.config, "_attn_implementation", None)
    if impl not in PACKED_ATTENTION:
        return f"attention {impl!r} is not one that transformers keeps packed examples apart in"
    if not hasattr(sys.modules.get(type(base).__module__), "create_causal_mask"):
        return (f"{type(base).__name__} builds its attention mask without transformers' masking_utils, so it "
                "would not see where each packed example starts")
    if "position_ids" not in inspect.signature(base.forward).parameters:
        return f"{type(base).__name__} takes no position_ids"
    return None


def data_collator(config, collator, model):
    """The task's own collator, or under ``training.padding_free`` transformers' DataCollatorWithFlattening:
    a batch becomes one row of its examples end to end with position_ids restarting at each, and labels -100
    at each example's first token, so that no token predicts the next example's. Each batch also says
    ``use_cache=False``: with a KV cache (the config's default, in training too) masking_utils looks for no
    packed examples and every token attends to the whole row (measured: another loss)."""
    if not getattr(config.training, "padding_free", False):
        return collator
    reason = padding_free_refusal(model)
    if reason:
        raise RuntimeError(f"training.padding_free: {reason}; turn padding_free off")
    from transformers import DataCollatorWithFlattening

    class PaddingFree(DataCollatorWithFlattening):
        def __call__(self, features, return_tensors=None, separator_id=None):
            return {**super().__call__(features, return_tensors, separator_id), "use_cache": False}

    return PaddingFree(return_position_ids=True, separator_id=-100)
