"""The memory and speed settings of ``training`` as the libraries take them.

``checkpointing_kwargs`` picks the checkpointing variant (``use_reentrant``); ``training_argument_extras`` maps
them onto ``TrainingArguments`` (only the fields the installed
Transformers has): ``torch_compile``, ``use_liger_kernel`` for ``fused_cross_entropy``. The adapter
dtype goes to peft through the method's ``BuildContext`` (``get_peft_model(autocast_adapter_dtype=...)``).
``whatif.*`` settings never reach the run.
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
