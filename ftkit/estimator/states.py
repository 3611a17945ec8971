"""Model states: base weights by storage type, trainable weights, gradients, optimizer states and ZeRO.

* **base weights** by storage type: 16/32-bit floats, int8 (one byte plus an fp32 scale per output row),
  nf4/fp4 (half a byte plus one fp32 absmax per 64-weight block; with double quantization the absmax are
  8-bit with one fp32 constant per 256 of them). peft's ``prepare_model_for_kbit_training`` casts every
  layer bitsandbytes leaves unquantized (embeddings, norms, the LM head) to fp32, which is counted.
* **trainable weights, gradients and optimizer states**: adapters are kept in fp32 by peft (or in the base
  dtype with ``training.adapter_dtype``); full fine-tuning trains the weights in their own dtype. AdamW
  keeps two states per parameter; 8-bit AdamW one byte per state; paged optimizers keep theirs in CUDA
  unified memory, reported apart. Under DeepSpeed with bf16/fp16 the optimizer also keeps an fp32
  master copy: 2 + 2 + 12 bytes per parameter, the ZeRO paper's 16 bytes. ZeRO partitions across N
  devices: stage 1 the optimizer states (and masters), stage 2 also the gradients, stage 3 also the
  parameters; offload moves optimizer states (and with ZeRO-3 parameters) to CPU memory.
"""
from __future__ import annotations

import math
from typing import Optional

from .. import shapes as S
from .devices import CPU_ZERO3_WEIGHT_COPIES, CPU_ZERO_GRAD_COPIES, OPTIMIZER_STATES, PAGED_OPTIMIZERS


def quantized_module(m: S.Module, bits: Optional[int]) -> bool:
    """bitsandbytes quantizes linear layers only, and ftkit keeps the LM and task heads unquantized."""
    if not bits or m.kind != "linear":
        return False
    return not set(m.name.split(".")) & set(S.HEAD_NAMES + ("pre_classifier",))


def weight_bytes(shapes: S.Shapes, bits: Optional[int], quant_type: str, double_quant: bool,
                 dtype_bytes: int, other_bytes: Optional[int] = None) -> dict[str, float]:
    """Bytes of the base weights by storage type."""
    out = {"fp32": 0.0, "bf16/fp16": 0.0, "int8": 0.0, quant_type: 0.0}
    if other_bytes is None:
        other_bytes = 4 if bits else dtype_bytes  # prepare_model_for_kbit_training casts the rest to fp32
    for m in shapes.modules:
        if quantized_module(m, bits):
            n = 0 if m.tied else m.weight_numel
            if bits == 4:
                blocks = math.ceil(n / 64)
                constants = blocks + 4 * math.ceil(blocks / 256) + 4 * 256 if double_quant else 4 * blocks
                out[quant_type] += n / 2 + constants
            else:
                out["int8"] += n + 4 * m.d_out
            if m.bias:  # biases stay in floating point
                out["fp32" if other_bytes == 4 else "bf16/fp16"] += other_bytes * m.d_out
        else:
            out["fp32" if other_bytes == 4 else "bf16/fp16"] += other_bytes * m.numel
    return {k: v for k, v in out.items() if v}


def model_states(shapes: S.Shapes, opts: dict, *, full: bool, trainable: int, adapter_params: int,
                 w_bytes: int, precision: str, world: int, on_cpu: bool, zero3_ok: bool = True,
                 notes: list) -> tuple[dict, dict, dict, float]:
    """(device breakdown, CPU-side breakdown, unified-memory breakdown, gradient bytes) of the model states."""
    stage = opts["zero_stage"]
    deepspeed = stage is not None
    n = world if deepspeed else 1
    weights = weight_bytes(shapes, opts["bits"], opts["quant_type"], opts["double_quant"], w_bytes)
    a_bytes = 4 if opts.get("adapter_dtype", "float32") == "float32" else min(4, 2 if precision in (
        "bf16", "fp16") else w_bytes)  # "base": the 16-bit compute dtype
    if full:  # full fine-tuning trains the weights in their dtype
        t_bytes, head_copy = w_bytes, 0.0
    else:  # adapters at the adapter dtype; a trained copy of the head (modules_to_save) in fp32
        t_bytes, head_copy = a_bytes, (trainable - adapter_params) * 4.0
    adapter_w = adapter_params * a_bytes + head_copy
    grad_bytes = trainable * t_bytes
    states, state_bytes = OPTIMIZER_STATES.get(opts["optimizer"], (2, None))
    mixed = deepspeed and precision in ("bf16", "fp16")
    if mixed and t_bytes == 2:
        master = trainable * 4.0
        opt_b = trainable * states * 4.0 if state_bytes is None else trainable * states * state_bytes
    else:
        master = 0.0
        opt_b = trainable * states * (t_bytes if state_bytes is None else state_bytes)
    if opts["optimizer"] == "adafactor":
        opt_b = trainable * 4.0 * 0.05  # factored second moments: rows + columns of each matrix
        notes.append("Adafactor's factored states are estimated at 5 % of a full fp32 state")

    out: dict[str, float] = {}
    cpu_side: dict[str, float] = {}
    unified: dict[str, float] = {}
    param_part = 1 / n if stage == 3 else 1.0
    for kind, value in weights.items():
        out[f"base weights ({kind})"] = value * param_part
    if adapter_w:
        out["trainable weights (adapters, heads)"] = adapter_w * param_part
    if stage == 3 and opts["offload_params"] != "none":
        keys = [k for k in out if k.startswith(("base weights", "trainable weights"))]
        cpu_side["parameters (offloaded)"] = sum(out[k] for k in keys) * n
        for k in keys:
            out[k] = 0.0
        notes.append("ZeRO-3 parameter offload: each layer's weights are fetched from CPU as it runs")
    opt_part = 1 / n if stage in (1, 2, 3) else 1.0
    grad_part = 1 / n if stage in (2, 3) else 1.0
    opt_total = (master + opt_b) * opt_part
    offloaded = opts["offload_optimizer"] != "none" and stage in (1, 2, 3)
    if offloaded:
        cpu_side["optimizer states + fp32 masters (offloaded)"] = opt_total * n
        if stage in (2, 3):  # ZeRO-Offload steps on CPU: fp32 gradients move there too
            cpu_side["fp32 gradients for the CPU step"] = trainable * 4.0
        opt_total = 0.0
    if master:
        out["fp32 master weights"] = 0.0 if offloaded else master * opt_part
        opt_total -= 0.0 if offloaded else master * opt_part
    if opts["optimizer"] in PAGED_OPTIMIZERS and not on_cpu and not offloaded:
        unified["optimizer states (paged)"] = max(0.0, opt_total)
        out["optimizer states"] = 0.0
    else:
        out["optimizer states"] = max(0.0, opt_total)
    if deepspeed and on_cpu:
        out["DeepSpeed engine buffers"] = CPU_ZERO_GRAD_COPIES[stage] * trainable * t_bytes + (
            (CPU_ZERO3_WEIGHT_COPIES if opts["offload_params"] == "none" else 1.0) * sum(weights.values())
            if stage == 3 else 0.0)
    elif deepspeed and stage in (1, 2) and n > 1:
        out["ZeRO communication buckets"] = min(5e8, trainable) * t_bytes
    if stage == 3 and not on_cpu:
        largest = max((sum(m.numel for m in shapes.modules if m.name.startswith(f"{shapes.blocks}.{i}."))
                       for i in range(shapes.num_blocks)), default=0)
        out["ZeRO-3 gathered layers"] = 2 * largest * w_bytes
    grads = grad_bytes * grad_part
    if opts.get("optimizer_in_backward"):  # each gradient is applied and freed as backward produces it
        largest = max((m.numel for m in shapes.modules), default=0)
        grads = min(grads, largest * t_bytes * 2)
    return out, cpu_side, unified, grads
