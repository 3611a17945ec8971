"""``estimate()``: one run's memory per device, parameters and step time, from the config alone."""
from __future__ import annotations

from typing import Optional

from .. import shapes as S
from ..methods._memory import LORA_LIKE
from .devices import (CPU_DISTRIBUTED_MB, CPU_RUNTIME_MB, CPU_TRANSIENT_FACTOR, CUDA_CONTEXT_MB, DTYPE_BYTES,
                      GPU_FRAGMENTATION, MB, lookup)
from .method_terms import activation_terms
from .phases import generation_peak, loading_peak
from .result import Estimate
from .states import model_states
from .timing import COMPILE_SPEEDUP, step_time

#: settings the estimate models but ftkit cannot run (yet): accepted as what-ifs and named in the result
WHAT_IF = {
    "activation_offloading": "activation offloading (saved activations kept in pinned CPU memory, as torchtune's "
                             "enable_activation_offloading)",
    "optimizer_in_backward": "optimizer step in backward (each gradient applied and freed as it is produced, "
                             "as torchtune's optimizer_in_bwd)",
}


def _defaults(config) -> dict:
    t, q, d = config.training, config.quantization, config.distributed
    w = getattr(config, "whatif", None)
    return dict(batch=t.batch_size, seq=t.max_seq_length, accum=t.gradient_accumulation_steps,
                checkpointing=t.gradient_checkpointing, optimizer=t.optimizer, precision=t.precision,
                dtype=config.model.dtype, bits=config.bits, quant_type=q.quant_type, double_quant=q.double_quant,
                zero_stage=d.zero_stage, offload_optimizer=d.offload_optimizer, offload_params=d.offload_params,
                adapter_dtype=getattr(t, "adapter_dtype", "float32"),
                fused_cross_entropy=getattr(t, "fused_cross_entropy", False),
                torch_compile=getattr(t, "torch_compile", False),
                padding_free=getattr(t, "padding_free", False),
                activation_offloading=getattr(w, "activation_offloading", False),
                optimizer_in_backward=getattr(w, "optimizer_in_backward", False),
                mean_seq_length=getattr(w, "mean_seq_length", None))


def _as_config(config):
    from ..config import RunConfig

    return RunConfig.load(config)


def estimate(config, gpus: Optional[int] = None, gpu_memory_gb: Optional[float] = None,
             device: str = "A100-80GB", shapes: Optional[S.Shapes] = None, suggest: bool = True,
             **overrides) -> Estimate:
    """Predict ``config``'s per-device peak memory (GiB), trainable parameters and step time.

    ``config``: a RunConfig, a dict, a YAML/JSON path or a preset name. ``gpus``: devices the run spans
    (default: the config's processes x nodes). ``gpu_memory_gb``: GiB of each (default: the device's).
    ``device``: a name from ``DEVICES`` ("A100-80GB", "H100-80GB", "RTX-4090", "CPU", ...).
    ``overrides``: batch, seq, accum, checkpointing, optimizer, precision, dtype, bits, quant_type,
    double_quant, zero_stage, offload_optimizer, offload_params, adapter_dtype, fused_cross_entropy,
    torch_compile, padding_free with mean_seq_length, and the what-ifs activation_offloading,
    optimizer_in_backward.
    """
    config = _as_config(config)
    dev = lookup(device)
    world = gpus if gpus is not None else config.distributed.num_processes * config.distributed.num_nodes
    world = max(1, int(world))
    memory_gb = gpu_memory_gb if gpu_memory_gb is not None else dev.memory_gb
    opts = {**_defaults(config), **overrides}
    shapes = shapes or S.from_run_config(config)
    method, options = config.method_spec, config.method_options
    memory = method.memory or LORA_LIKE
    notes: list[str] = list(memory.notes(options)) if memory.notes else []
    on_cpu = dev.kind == "cpu"
    dtype, precision, w_bytes, act_bytes = _precision(opts, dev)
    trainable, exact = _trainable(config, shapes, opts, notes)
    full = method.kind == "full"
    adapter_params = 0 if full else max(0, trainable - (shapes.head_params() if memory.saves_head else 0))

    breakdown, cpu_side, unified, grads = model_states(
        shapes, opts, full=full, trainable=trainable, adapter_params=adapter_params, w_bytes=w_bytes,
        precision=precision, world=world, on_cpu=on_cpu, notes=notes)
    seq = opts["seq"]
    if opts["padding_free"]:  # activations and time follow the tokens a batch really holds
        seq = min(seq, int(opts["mean_seq_length"] or seq))
        notes.append(f"padding-free batches: {seq} tokens per example"
                     + ("" if opts["mean_seq_length"] else " (max_seq_length: set whatif.mean_seq_length to the "
                        "data's mean)"))
    seq += memory.extra_tokens(options) if memory.extra_tokens else 0
    # padding-free: the model sees one row of batch x seq tokens (per-token terms alike, eager's scores over all)
    acts = activation_terms(shapes, method, options, {**opts, "batch": 1} if opts["padding_free"] else opts,
                            act_bytes, config.model.attn_implementation != "eager", on_cpu,
                            opts["batch"] * seq if opts["padding_free"] else seq)
    if opts["torch_compile"]:
        notes.append("torch.compile: memory estimated as without it (what inductor saves varies by model); "
                     f"time {COMPILE_SPEEDUP:.2f}x faster")
    _add_activations_and_overhead(breakdown, acts, grads, cpu_side, opts, world, on_cpu)
    phases = {}
    if not on_cpu:
        phases["loading"] = loading_peak(shapes, opts, breakdown, w_bytes)
        phases["generation"] = generation_peak(config, shapes, opts, breakdown, act_bytes)
    flops, seconds, tokens = step_time(shapes, dev, opts, full=full, base_total=shapes.total, trainable=trainable,
                                       seq=seq, act_bytes=act_bytes, slowdown=method.slowdown, world=world,
                                       w_bytes=w_bytes)
    est = Estimate(
        model=config.model_name, method=method.name, task=config.task.name, device=dev.name, gpus=world,
        gpu_memory_gb=memory_gb, total_params=shapes.total + adapter_params, trainable_params=trainable,
        breakdown=breakdown, cpu_breakdown=cpu_side, flops_per_step=flops, seconds_per_step=seconds,
        tokens_per_step=tokens, notes=notes, exact_params=exact, phases={k: v for k, v in phases.items() if v},
        unified_breakdown=unified, what_if=[WHAT_IF[k] for k in WHAT_IF if opts.get(k)],
        settings={**opts, "device_kind": dev.kind, "dtype_resolved": dtype, "precision_resolved": precision,
                  "world": world},
    )
    if suggest and not est.fits:
        from .suggest import suggestions

        est.suggestions = suggestions(config, est, gpus=world, gpu_memory_gb=memory_gb, device=device,
                                      shapes=shapes, **overrides)
    return est


def _precision(opts: dict, dev) -> tuple[str, str, int, int]:
    """(weights' dtype, mixed precision, bytes per weight, bytes per activation) on this device."""
    on_cpu = dev.kind == "cpu"
    dtype = opts["dtype"] if opts["dtype"] != "auto" else ("bfloat16" if (not on_cpu and dev.bf16) else "float32")
    precision = opts["precision"]
    if precision == "auto":
        precision = "bf16" if (not on_cpu and dev.bf16) else "fp32"
    w_bytes = DTYPE_BYTES[dtype]
    act_bytes = 2 if precision in ("bf16", "fp16") else w_bytes
    if opts["bits"] and not on_cpu:
        act_bytes = 2 if dev.bf16 else 4  # compute dtype auto: bf16 where the GPU has it
    return dtype, precision, w_bytes, act_bytes


def _trainable(config, shapes: S.Shapes, opts: dict, notes: list) -> tuple[int, bool]:
    """(trainable parameters as peft counts them, whether the count is exact)."""
    from ..methods import BuildContext

    method, options = config.method_spec, config.method_options
    ctx = BuildContext(model_kind=shapes.model_kind, model_type=shapes.model_type, quantized=bool(opts["bits"]),
                       total_steps=config.training.max_steps or 1000, gradient_checkpointing=opts["checkpointing"])
    try:
        trainable = method.params(shapes, options, ctx) if method.params else None
    except Exception as exc:  # a method that cannot be counted on this model
        trainable = None
        notes.append(f"cannot count {method.name}'s parameters here: {exc}")
    if trainable is None:
        return int(0.01 * shapes.total), False
    return trainable, True


def _add_activations_and_overhead(breakdown: dict, acts: dict, grads: float, cpu_side: dict, opts: dict,
                                  world: int, on_cpu: bool) -> None:
    """Activations and gradients, then the framework's own memory, into ``breakdown``.

    Backward frees activations as it produces gradients, and the optimizer sets gradients to None after
    each step: the peak holds the larger of the two. With checkpointing the activations are small and the
    gradients build up while layers are recomputed: both count."""
    factor = CPU_TRANSIENT_FACTOR if on_cpu else 1.0
    for key, value in acts.items():
        breakdown[key] = value * factor
    breakdown["gradients"] = grads
    if not opts["checkpointing"]:
        breakdown["gradients reuse freed activations"] = -min(grads, sum(acts.values()) * factor)
    if on_cpu:
        for key, value in cpu_side.items():  # offloading to the CPU on a CPU machine: the same process
            breakdown[f"{key} (host)"] = value / (world if opts["zero_stage"] is not None else 1)
        breakdown["framework overhead"] = (CPU_DISTRIBUTED_MB if opts["zero_stage"] is not None or world > 1
                                           else CPU_RUNTIME_MB) * MB
    else:
        breakdown["allocator slack"] = sum(breakdown.values()) * (GPU_FRAGMENTATION - 1)
        breakdown["framework overhead"] = CUDA_CONTEXT_MB * MB


def predicted_peak_mb(config, device: str = "CPU", world: int = 1) -> float:
    """The number a finished run's measurement is compared with (MiB): RSS above the process's start on a
    CPU, ``torch.cuda.max_memory_allocated`` on a GPU."""
    return estimate(config, gpus=world, device=device, suggest=False).allocated_mb
