"""The method-dependent part of the activation estimate: what trains, what is adapted, what it keeps.

``activation_terms`` puts together the per-layer walk (``activations.py``) and the method's own terms
(``MethodSpec.memory``); ``saved_activation_bytes`` is the same figure as ``saved_tensors_hooks`` sees it.
"""
from __future__ import annotations

from typing import Optional

from .. import shapes as S
from ..methods._memory import LORA_LIKE, ActivationContext, MemoryModel
from . import activations as A


def _mapping_of(method) -> Optional[str]:
    """The peft target mapping a method's defaults come from (its peft type's, LoRA's for the LoRA family)."""
    peft_type = method.peft_type or "LORA"
    return {"LN_TUNING": "LNTUNING", "ADAPTION_PROMPT": None}.get(peft_type, peft_type)


def method_terms(shapes: S.Shapes, method, options, ctx: ActivationContext) -> tuple[MemoryModel, set, dict]:
    """(the method's memory model, base modules whose weights train, {adapted module name: module})."""
    memory = method.memory or LORA_LIKE
    if memory.trained is not None:
        trained = set(memory.trained(shapes, options))
    elif method.kind == "full":
        trained = {m.name for m in shapes.modules}
    else:
        trained = {m.name for m in shapes.head_modules()}
    adapted: dict = {}
    if method.kind == "adapter":
        try:
            mods = memory.adapted(shapes, options) if memory.adapted else S.targets_of(
                shapes, options, _mapping_of(method))
        except Exception:
            mods = []
        adapted = {m.name: m for m in mods}
    return memory, trained, adapted


def activation_terms(shapes: S.Shapes, method, options, opts: dict, act_bytes: int, fused: bool,
                     on_cpu: bool, seq: int) -> dict[str, float]:
    """Bytes of activations for one micro-batch, by part (saved by autograd, plus the loss's transient)."""
    b, ckpt = opts["batch"], opts["checkpointing"]
    ctx = ActivationContext(act_bytes=act_bytes, adapter_bytes=4 if opts["adapter_dtype"] == "float32" else act_bytes,
                            mask_bytes=act_bytes if on_cpu else 1, autocast=act_bytes == 2 and not on_cpu,
                            model_type=shapes.model_type)
    memory, trained, adapted = method_terms(shapes, method, options, ctx)
    first = memory.first_block(shapes, options) if memory.first_block else 0
    out: dict[str, float] = {}
    if shapes.model_type in A.WALKED:
        per, head, weight_space = A.saved_per_token(shapes, memory, options, ctx, trained, adapted, seq, fused, first,
                                      prompt=method.kind == "prompt" and not memory.kv_tokens,
                                      checkpointing=ckpt)
    else:
        n = shapes.layers + shapes.decoder_layers
        per = [A.korthikanti_layer(shapes, seq, act_bytes, fused, cross=i >= shapes.layers)
               for i in range(n) if i >= first]
        per[-1:] = per[-1:] or [0.0]
        extra = sum(memory.per_adapter(m, options, ctx).extra for m in adapted.values())
        per = [p + extra / max(1, len(per)) for p in per]
        weight_space = sum(memory.per_adapter(m, options, ctx).weights for m in adapted.values())
        head = shapes.vocab * 4 if shapes.model_kind in ("causal_lm", "seq2seq") else 0.0
    layers = max(per, default=0.0)
    # checkpointing (reentrant or not: both keep the same): each block's input saved in forward, one block
    # recomputed at a time in backward (its activations and their gradients)
    recompute = 2 * layers if ckpt else 0.0
    kept = len([p for p in per if p]) * shapes.hidden * act_bytes if ckpt else sum(per)
    if opts["activation_offloading"]:  # saved tensors wait in host memory; about two blocks' worth stay
        kept = min(kept + recompute, 2 * layers + len(per) * shapes.hidden * act_bytes) - recompute
    out["activations (layers)"] = max(0.0, kept) * b * seq
    if recompute:
        out["activations (recomputed block)"] = recompute * b * seq
    logits = shapes.model_kind in ("causal_lm", "seq2seq")
    if logits and opts["fused_cross_entropy"]:
        # fused linear + cross-entropy (Liger): logits are computed and freed in chunks sized so that a chunk's
        # logits hold about as many elements as the hidden states (fp32, with their gradient), and the gradient
        # of the head's input is computed in forward (fp32)
        out["activations (logits + loss)"] = b * seq * (shapes.hidden * 12 + 8)
    elif logits:
        # saved: the fp32 log-softmax; at the start of backward its gradient and the logits' are alive too
        out["activations (logits + loss)"] = b * seq * (head + 8 * shapes.vocab)
    else:
        out["activations (logits + loss)"] = b * seq * head
    if memory.per_token:
        out["activations (adapters)"] = memory.per_token(shapes, options, ctx) * b * seq
    if memory.weight_space:
        weight_space += memory.weight_space(shapes, options, ctx)
    if weight_space:
        out["activations (adapter weight products)"] = weight_space
    return out


def saved_activation_bytes(shapes: S.Shapes, method, options, batch: int, seq: int, act_bytes: int = 4,
                           on_cpu: bool = True, fused: bool = True, checkpointing: bool = False) -> float:
    """Bytes autograd saves for backward over one micro-batch, as ``saved_tensors_hooks`` sees them (no
    transient loss gradients, no CPU allocator factor, no block recomputed under checkpointing): what
    ``tests/test_activations.py`` measures."""
    opts = {"batch": batch, "checkpointing": checkpointing, "adapter_dtype": "float32",
            "activation_offloading": False, "fused_cross_entropy": False}
    memory = method.memory or LORA_LIKE
    seq = seq + (memory.extra_tokens(options) if memory.extra_tokens else 0)
    acts = activation_terms(shapes, method, options, opts, act_bytes, fused, on_cpu, seq)
    acts.pop("activations (recomputed block)", None)
    if "activations (logits + loss)" in acts and shapes.model_kind in ("causal_lm", "seq2seq"):
        acts["activations (logits + loss)"] -= batch * seq * 8 * shapes.vocab
    return sum(acts.values())
