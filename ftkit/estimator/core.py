"""``estimate()``: one run's memory per device, parameters and step time, from the config alone."""
from __future__ import annotations

from typing import Any, Optional

from .. import shapes as S
from ..methods._memory import LORA_LIKE, ActivationContext, MemoryModel
from . import activations as A
from .devices import (CPU_DISTRIBUTED_MB, CPU_RUNTIME_MB, CPU_TRANSIENT_FACTOR, CUDA_CONTEXT_MB, DTYPE_BYTES,
                      GPU_FRAGMENTATION, MB, lookup)
from .phases import generation_peak, loading_peak
from .result import Estimate
from .states import model_states
from .timing import step_time

#: settings the estimate models but ftkit cannot run (yet): accepted as what-ifs and named in the result
WHAT_IF = {
    "activation_offloading": "activation offloading (saved activations kept in pinned CPU memory, as torchtune's "
                             "enable_activation_offloading)",
    "optimizer_in_backward": "optimizer step in backward (each gradient applied and freed as it is produced, "
                             "as torchtune's optimizer_in_bwd)",
    "padding_free": "padding-free batches (packed, no padding tokens), of whatif.mean_seq_length tokens per example",
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
                padding_free=getattr(w, "padding_free", False),
                activation_offloading=getattr(w, "activation_offloading", False),
                optimizer_in_backward=getattr(w, "optimizer_in_backward", False),
                mean_seq_length=getattr(w, "mean_seq_length", None))


def _as_config(config):
    from ..config import RunConfig

    if isinstance(config, RunConfig):
        return config
    if isinstance(config, dict):
        return RunConfig.from_dict(config)
    text = str(config)
    if text.endswith((".yaml", ".yml")):
        return RunConfig.from_yaml(text)
    if text.endswith(".json"):
        return RunConfig.from_json(text)
    return RunConfig.preset(text)


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
                                      prompt=method.kind == "prompt", checkpointing=ckpt)
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
    if ckpt:  # each block's input kept, one block recomputed at a time (its activations and their gradients)
        kept = len([p for p in per if p]) * shapes.hidden * act_bytes + 2 * layers
    else:
        kept = sum(per)
    if opts["activation_offloading"]:  # saved tensors wait in host memory; about two blocks' worth stay
        kept = min(kept, 2 * layers + len(per) * shapes.hidden * act_bytes)
    out["activations (layers)"] = kept * b * seq
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


def estimate(config, gpus: Optional[int] = None, gpu_memory_gb: Optional[float] = None,
             device: str = "A100-80GB", shapes: Optional[S.Shapes] = None, suggest: bool = True,
             **overrides) -> Estimate:
    """Predict ``config``'s per-device peak memory (GiB), trainable parameters and step time.

    ``config``: a RunConfig, a dict, a YAML/JSON path or a preset name. ``gpus``: devices the run spans
    (default: the config's processes x nodes). ``gpu_memory_gb``: GiB of each (default: the device's).
    ``device``: a name from ``DEVICES`` ("A100-80GB", "H100-80GB", "RTX-4090", "CPU", ...).
    ``overrides``: batch, seq, accum, checkpointing, optimizer, precision, dtype, bits, quant_type,
    double_quant, zero_stage, offload_optimizer, offload_params, adapter_dtype, fused_cross_entropy,
    torch_compile, padding_free, and the what-ifs activation_offloading, optimizer_in_backward,
    mean_seq_length.
    """
    config = _as_config(config)
    dev = lookup(device)
    world = gpus if gpus is not None else config.distributed.num_processes * config.distributed.num_nodes
    world = max(1, int(world))
    memory_gb = gpu_memory_gb if gpu_memory_gb is not None else dev.memory_gb
    opts = {**_defaults(config), **overrides}
    shapes = shapes or S.from_run_config(config)
    method, options = config.method_spec, config.method_options
    notes: list[str] = []
    what_if = [WHAT_IF[k] + (f": {opts['mean_seq_length'] or opts['seq']}" if k == "padding_free" else "")
               for k in WHAT_IF if opts.get(k)]
    on_cpu = dev.kind == "cpu"

    # ---- precision ---------------------------------------------------------------------------------
    dtype = opts["dtype"] if opts["dtype"] != "auto" else (
        "bfloat16" if (not on_cpu and dev.bf16) else "float32")
    precision = opts["precision"]
    if precision == "auto":
        precision = "bf16" if (not on_cpu and dev.bf16) else "fp32"
    w_bytes = DTYPE_BYTES[dtype]
    act_bytes = 2 if precision in ("bf16", "fp16") else w_bytes
    if opts["bits"] and not on_cpu:
        act_bytes = 2 if dev.bf16 else 4  # compute dtype auto: bf16 where the GPU has it

    # ---- parameters --------------------------------------------------------------------------------
    from ..methods import BuildContext

    ctx = BuildContext(model_kind=shapes.model_kind, model_type=shapes.model_type, quantized=bool(opts["bits"]),
                       total_steps=config.training.max_steps or 1000,
                       gradient_checkpointing=opts["checkpointing"])
    exact = True
    try:
        trainable = method.params(shapes, options, ctx) if method.params else None
    except Exception as exc:  # a method that cannot be counted on this model
        trainable = None
        notes.append(f"cannot count {method.name}'s parameters here: {exc}")
    if trainable is None:
        exact = False
        trainable = int(0.01 * shapes.total)
    if method.name == "adamss" and options.use_asa:
        notes.append("AdaMSS with ASA prunes subspaces while training; the count is the starting one")
    full = method.kind == "full"
    base_total = shapes.total
    adapter_params = 0 if full else trainable - shapes.head_params() if method.name != "trainable_tokens" \
        else trainable
    adapter_params = max(0, adapter_params)

    # ---- weights, gradients, optimizer -------------------------------------------------------------
    breakdown, cpu_side, unified, grads = model_states(
        shapes, opts, full=full, trainable=trainable, adapter_params=adapter_params, w_bytes=w_bytes,
        precision=precision, world=world, on_cpu=on_cpu, notes=notes)

    # ---- activations -------------------------------------------------------------------------------
    fused = config.model.attn_implementation != "eager"
    seq = opts["seq"]
    if opts["mean_seq_length"] and opts["padding_free"]:
        seq = min(seq, int(opts["mean_seq_length"]))
    memory = method.memory or LORA_LIKE
    if memory.extra_tokens:
        seq += memory.extra_tokens(options)
    acts = activation_terms(shapes, method, options, opts, act_bytes, fused, on_cpu, seq)
    if opts["torch_compile"]:
        notes.append("torch.compile: memory estimated as without it (what inductor saves varies by model); "
                     f"time {1.15:.2f}x faster")
    breakdown.update(acts)
    # Backward frees activations as it produces gradients, and the optimizer sets gradients to None after
    # each step: the peak holds the larger of the two. With checkpointing the activations are small and
    # the gradients build up while layers are recomputed: both count.
    act_total = sum(acts.values())
    breakdown["gradients"] = grads
    if not opts["checkpointing"]:
        breakdown["gradients reuse freed activations"] = -min(grads, act_total)

    # ---- overhead -----------------------------------------------------------------------------------
    if on_cpu:
        for key in acts:
            breakdown[key] *= CPU_TRANSIENT_FACTOR
        if "gradients reuse freed activations" in breakdown:
            breakdown["gradients reuse freed activations"] = -min(grads, act_total * CPU_TRANSIENT_FACTOR)
        for key, value in cpu_side.items():  # offloading to the CPU on a CPU machine: the same process
            breakdown[f"{key} (host)"] = value / (world if opts["zero_stage"] is not None else 1)
        breakdown["framework overhead"] = (CPU_DISTRIBUTED_MB if opts["zero_stage"] is not None or world > 1
                                           else CPU_RUNTIME_MB) * MB
    else:
        allocated = sum(breakdown.values())
        breakdown["allocator slack"] = allocated * (GPU_FRAGMENTATION - 1)
        breakdown["framework overhead"] = CUDA_CONTEXT_MB * MB

    # ---- other phases: loading, generation at evaluation ---------------------------------------------
    phases = {}
    if not on_cpu:
        phases["loading"] = loading_peak(shapes, opts, breakdown, w_bytes)
        gen = generation_peak(config, shapes, opts, breakdown, act_bytes)
        if gen:
            phases["generation"] = gen

    # ---- time ---------------------------------------------------------------------------------------
    flops, seconds, tokens = step_time(shapes, dev, opts, full=full, base_total=base_total, trainable=trainable,
                                       seq=seq, act_bytes=act_bytes, slowdown=getattr(method, "slowdown", 1.0),
                                       world=world, w_bytes=w_bytes)
    settings = {**opts, "device_kind": dev.kind, "dtype_resolved": dtype, "precision_resolved": precision,
                "world": world}
    est = Estimate(
        model=config.model_name, method=method.name, task=config.task.name, device=dev.name, gpus=world,
        gpu_memory_gb=memory_gb, total_params=base_total + adapter_params, trainable_params=trainable,
        breakdown=breakdown, cpu_breakdown=cpu_side, flops_per_step=flops, seconds_per_step=seconds,
        tokens_per_step=tokens, settings=settings, notes=notes, exact_params=exact, phases=phases,
        unified_breakdown=unified, what_if=what_if,
    )
    if suggest and not est.fits:
        from .suggest import suggestions

        est.suggestions = suggestions(config, est, gpus=world, gpu_memory_gb=memory_gb, device=device,
                                      shapes=shapes, **overrides)
    return est


def predicted_peak_mb(config, device: str = "CPU", world: int = 1) -> float:
    """The number a finished run's measurement is compared with (MiB): RSS above the process's start on a
    CPU, ``torch.cuda.max_memory_allocated`` on a GPU."""
    return estimate(config, gpus=world, device=device, suggest=False).allocated_mb


def saved_activation_bytes(shapes: S.Shapes, method, options, batch: int, seq: int, act_bytes: int = 4,
                           on_cpu: bool = True, fused: bool = True) -> float:
    """Bytes autograd saves for backward over one micro-batch, as ``saved_tensors_hooks`` sees them (no
    transient loss gradients, no CPU allocator factor): what ``tests/test_activations.py`` measures."""
    opts = {"batch": batch, "checkpointing": False, "adapter_dtype": "float32", "activation_offloading": False,
            "fused_cross_entropy": False}
    memory = method.memory or LORA_LIKE
    seq = seq + (memory.extra_tokens(options) if memory.extra_tokens else 0)
    acts = activation_terms(shapes, method, options, opts, act_bytes, fused, on_cpu, seq)
    if "activations (logits + loss)" in acts and shapes.model_kind in ("causal_lm", "seq2seq"):
        acts["activations (logits + loss)"] -= batch * seq * 8 * shapes.vocab
    return sum(acts.values())
