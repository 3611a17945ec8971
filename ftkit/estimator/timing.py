"""Time per optimizer step from FLOPs over a device's peak throughput times an efficiency factor.

``6·P·tokens`` for full training; ``4·P·tokens`` plus ``6·T·tokens`` when a frozen base carries T
trainable adapter parameters (no weight gradients for the base); one more forward pass with gradient
checkpointing; attention's ``s²`` terms on top. A method's own cost beyond its FLOPs is its spec's
``slowdown`` (DoRA renormalises each adapted weight per step); quantized bases dequantize at every use.
"""
from __future__ import annotations

from .devices import CPU_ADAM_PARAMS_PER_S, EFFICIENCY, PCIE_BYTES_PER_S, QUANT_SLOWDOWN, Device

#: torch.compile's gain per step on fine-tuning workloads (fused elementwise kernels); a rough figure
COMPILE_SPEEDUP = 1.15
#: activation offloading: copies to and from the host overlap with compute, mostly
OFFLOAD_ACTIVATIONS_SLOWDOWN = 1.1


def step_time(shapes, dev: Device, opts: dict, *, full: bool, base_total: int, trainable: int, seq: int,
              act_bytes: int, slowdown: float, world: int, w_bytes: int) -> tuple[float, float, int]:
    """(FLOPs, seconds, tokens) of one optimizer step on one device."""
    on_cpu = dev.kind == "cpu"
    stage = opts["zero_stage"]
    n = world if stage is not None else 1
    tokens = opts["batch"] * seq * opts["accum"]
    flops = (6.0 if full else 4.0) * base_total * tokens + (0.0 if full else 6.0 * trainable * tokens)
    if opts["checkpointing"]:
        flops += 2.0 * base_total * tokens
    attn = 4.0 * opts["batch"] * seq * seq * shapes.heads * shapes.head_dim * shapes.total_layers * opts["accum"]
    flops += attn * (3 + int(opts["checkpointing"]))
    peak = (dev.tflops_16 if act_bytes == 2 else dev.tflops_32) * 1e12
    speed = peak * EFFICIENCY[dev.kind] / QUANT_SLOWDOWN.get(opts["bits"] or 0, 1.0)
    if opts.get("torch_compile"):
        speed *= COMPILE_SPEEDUP
    seconds = flops / speed * slowdown if speed else float("nan")
    if opts.get("activation_offloading"):
        seconds *= OFFLOAD_ACTIVATIONS_SLOWDOWN
    if stage is not None and opts["offload_optimizer"] != "none" and not on_cpu:
        # gradients down and updated fp32 parameters up each step, and the Adam step on the CPU
        seconds += trainable / n * 8 / PCIE_BYTES_PER_S + trainable / n / CPU_ADAM_PARAMS_PER_S
    if stage == 3 and opts["offload_params"] != "none" and not on_cpu:
        # every rank fetches every layer's weights from the CPU in forward, recompute and backward
        seconds += 3 * base_total * w_bytes / PCIE_BYTES_PER_S * opts["accum"]
    return flops, seconds, tokens
