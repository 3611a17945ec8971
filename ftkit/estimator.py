"""Memory, parameter and time estimates for a run, from the model's ``config.json`` alone.

``estimate(config, gpus=N, gpu_memory_gb=M)`` predicts the peak memory of
one device before any weight is downloaded, broken down into what takes it:

* **base weights** by storage type: 16/32-bit floats, int8 (one byte plus an
  fp32 scale per output row), nf4/fp4 (half a byte plus one fp32 absmax per
  64-weight block; with double quantization the absmax are 8-bit with one
  fp32 constant per 256 of them). peft's ``prepare_model_for_kbit_training``
  casts every layer bitsandbytes leaves unquantized (embeddings, norms, the
  LM head) to fp32, which is counted.
* **trainable weights, gradients and optimizer states**: adapters are kept in
  fp32 by peft; full fine-tuning trains the weights in their own dtype. AdamW
  keeps two states per parameter (fp32 for fp32 parameters); 8-bit AdamW one
  byte per state. Under DeepSpeed with bf16/fp16 the optimizer also keeps an
  fp32 master copy: 2 + 2 + 12 bytes per parameter, the ZeRO paper's
  16 bytes. ZeRO partitions across N devices: stage 1 the optimizer states
  (and masters), stage 2 also the gradients, stage 3 also the parameters;
  offload moves optimizer states (and with ZeRO-3 parameters) to CPU memory,
  which is reported separately.
* **activations**: what autograd keeps per transformer layer, following the
  accounting of Korthikanti et al., "Reducing Activation Recomputation in
  Large Transformer Models" (2022), §4: for a GPT layer of width h, a heads,
  sequence s and micro-batch b it is ``s·b·h·(34 + 5·a·s/h)`` bytes in 16-bit.
  The same terms are evaluated with this model's widths: the MLP's real
  intermediate size and gating, grouped key/value heads, no dropout masks
  where dropout is 0, no s² scores with fused (SDPA/flash) attention, and no
  saved linear inputs where a linear layer is frozen (autograd keeps a
  linear's input only to compute its weight's gradient). Gradient
  checkpointing keeps one hidden state per layer plus one layer's worth.
  Logits add ``b·s·V`` in the compute dtype plus two fp32 copies for the loss.
* a fixed **framework overhead**: the CUDA context and kernels on a GPU
  (not seen by ``torch.cuda.max_memory_allocated``); on a CPU, what a run
  adds to a Python process that has torch and transformers loaded (see
  ``CPU_RUNTIME_MB``).

Time per step comes from FLOPs over a device's peak throughput times an
efficiency factor: ``6·P·tokens`` for full training; ``4·P·tokens`` plus
``6·T·tokens`` when a frozen base carries T trainable adapter parameters
(no weight gradients for the base); one more forward pass with gradient
checkpointing; attention's ``s²`` terms on top.

Importing this module, and calling it, imports no torch.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Optional

from . import shapes as S

MB = 2 ** 20
GB = 2 ** 30


@dataclass(frozen=True)
class Device:
    name: str
    memory_gb: float
    tflops_16: float  # dense bf16/fp16 tensor throughput
    tflops_32: float  # fp32 (TF32 where the hardware uses it for matmuls)
    bf16: bool = True
    kind: str = "cuda"


#: peak dense throughput from the vendors' data sheets (no sparsity)
DEVICES = {d.name: d for d in (
    Device("H200", 141, 989, 494),
    Device("H100-80GB", 80, 989, 494),
    Device("H100-PCIe", 80, 756, 378),
    Device("A100-80GB", 80, 312, 156),
    Device("A100-40GB", 40, 312, 156),
    Device("L40S", 48, 362, 183),
    Device("A10", 24, 125, 62.5),
    Device("L4", 24, 121, 60),
    Device("RTX-4090", 24, 165, 82.6),
    Device("RTX-3090", 24, 71, 35.6),
    Device("V100-32GB", 32, 125, 15.7, bf16=False),
    Device("T4", 16, 65, 8.1, bf16=False),
    Device("CPU", 0, 0.2, 0.2, bf16=False, kind="cpu"),
)}
#: share of peak throughput a fine-tuning step reaches (model FLOPs utilisation)
EFFICIENCY = {"cuda": 0.4, "cpu": 0.5}
#: 4/8-bit bases dequantize each weight at every use: slower per FLOP
QUANT_SLOWDOWN = {4: 1.5, 8: 1.3}
#: methods whose adapters cost more than their FLOPs say (DoRA renormalises each adapted weight per step)
METHOD_SLOWDOWN = {"dora": 1.3}
#: host-device bandwidth (PCIe 4.0 x16, achieved) and DeepSpeed CPU-Adam speed, for offload
PCIE_BYTES_PER_S = 20e9
CPU_ADAM_PARAMS_PER_S = 1.5e9

#: GPU memory a process holds outside the PyTorch allocator: CUDA context, cuBLAS/cuDNN workspaces
CUDA_CONTEXT_MB = 800
#: allocator slack: cached blocks and fragmentation on top of the allocated peak
GPU_FRAGMENTATION = 1.08
#: headroom kept free when judging whether a run fits
FIT_MARGIN = 0.95

# ---- CPU calibration (measured with bench/memory.py on 2-core CPU machines, torch 2.13) ------------------
#: RSS a run adds on top of a process that already has torch and transformers imported, before the
#: model: peft, datasets, accelerate and the Trainer imported, tokenizer and data loaded. Fitted as the
#: median intercept of measured-minus-modelled peaks over the bench rows (a constant, not a share).
CPU_RUNTIME_MB = 150.0
#: the same for each rank of a DeepSpeed run on CPU: lower, because the worker imports DeepSpeed and sets
#: up the gloo process group before the run records its baseline
CPU_DISTRIBUTED_MB = 118.0
#: DeepSpeed 0.19's CPU engine (fp32, 2 ranks, ftkit's presets) holds flat copies of the trainable
#: parameters' gradients (bucketing, the fp32 partitions the optimizer steps on), measured as multiples
#: of the unpartitioned gradient bytes G; ZeRO-3 also gathers whole layers and briefly holds the full
#: model next to its partition while it shards it at start (1.5 x the weights; 1 x with parameter
#: offload, whose partitions go straight to host buffers). Fitted on the bench's ZeRO rows.
CPU_ZERO_GRAD_COPIES = {0: 2.0, 1: 3.5, 2: 2.8, 3: 3.6}
CPU_ZERO3_WEIGHT_COPIES = 1.5

#: glibc's heap keeps freed activation blocks mapped and hands them out again only when sizes line up,
#: so the RSS high-water mark of the transient tensors (activations) runs above their live bytes. Fitted
#: on the bench rows with and without checkpointing (full, LoRA, batch 2 and 8): 1.3.
CPU_TRANSIENT_FACTOR = 1.3

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
OPTIMIZER_STATES = {  # (states per parameter, bytes per state or None for "the parameter's own")
    "adamw_torch": (2, None), "adamw_torch_fused": (2, None), "adamw_bnb_8bit": (2, 1),
    "paged_adamw_8bit": (2, 1), "adafactor": (1, None), "sgd": (0, None),
}


@dataclass
class Estimate:
    """A run's predicted memory per device, parameters and time per step, with a verdict."""

    model: str
    method: str
    task: str
    device: str
    gpus: int
    gpu_memory_gb: float
    total_params: int
    trainable_params: int
    #: bytes on each device, by what takes them
    breakdown: dict[str, float]
    #: bytes on the CPU of each machine (offloaded states and parameters), by what takes them
    cpu_breakdown: dict[str, float]
    flops_per_step: float
    seconds_per_step: float
    tokens_per_step: int
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    suggestions: list[dict] = field(default_factory=list)
    exact_params: bool = True

    # ---- derived ------------------------------------------------------------------------------------
    @property
    def on_cpu(self) -> bool:
        return self.settings.get("device_kind") == "cpu"

    @property
    def peak_bytes(self) -> float:
        """Peak memory of one device, framework overhead included."""
        return sum(self.breakdown.values())

    @property
    def peak_gb(self) -> float:
        return self.peak_bytes / GB

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / MB

    @property
    def allocated_mb(self) -> float:
        """What ``torch.cuda.max_memory_allocated`` (GPU) or RSS above the start (CPU) should show."""
        skip = ("framework overhead", "allocator slack")
        return sum(v for k, v in self.breakdown.items() if k not in skip) / MB + (
            self.breakdown.get("framework overhead", 0) / MB if self.on_cpu else 0)

    @property
    def cpu_gb(self) -> float:
        return sum(self.cpu_breakdown.values()) / GB

    @property
    def trainable_share(self) -> float:
        return self.trainable_params / self.total_params if self.total_params else 0.0

    @property
    def fits(self) -> bool:
        if self.on_cpu or not self.gpu_memory_gb:
            return True
        return self.peak_bytes <= self.gpu_memory_gb * GB * FIT_MARGIN

    @property
    def verdict(self) -> str:
        where = f"{self.gpus} x {self.gpu_memory_gb:g} GB"
        if self.on_cpu:
            return f"needs about {self.peak_gb:.2f} GB of RAM per process"
        if self.fits:
            return f"fits on {where}: {self.peak_gb:.1f} GB per GPU of {self.gpu_memory_gb:g} GB"
        first = self.suggestions[0]["change"] if self.suggestions else "a larger GPU"
        return (f"does not fit on {where}: needs {self.peak_gb:.1f} GB per GPU of {self.gpu_memory_gb:g} GB; "
                f"first change: {first}")

    @property
    def first_suggestion(self) -> Optional[str]:
        return self.suggestions[0]["change"] if self.suggestions else None

    # ---- output -------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "model": self.model, "method": self.method, "task": self.task, "device": self.device,
            "gpus": self.gpus, "gpu_memory_gb": self.gpu_memory_gb,
            "total_params": self.total_params, "trainable_params": self.trainable_params,
            "trainable_pct": round(100 * self.trainable_share, 4), "exact_params": self.exact_params,
            "peak_gb": round(self.peak_gb, 3), "allocated_mb": round(self.allocated_mb, 1),
            "breakdown_gb": {k: round(v / GB, 4) for k, v in self.breakdown.items()},
            "cpu_gb": round(self.cpu_gb, 3),
            "cpu_breakdown_gb": {k: round(v / GB, 4) for k, v in self.cpu_breakdown.items()},
            "tokens_per_step": self.tokens_per_step, "flops_per_step": self.flops_per_step,
            "seconds_per_step": round(self.seconds_per_step, 4),
            "fits": self.fits, "verdict": self.verdict, "suggestions": self.suggestions,
            "settings": self.settings, "notes": self.notes,
        }

    def table(self) -> str:
        def gb(v: float) -> str:
            return f"{v / GB:9.3f}"

        lines = [
            f"{self.method} on {self.task}: {self.model}",
            f"  parameters: {_human(self.total_params)} total, {_human(self.trainable_params)} trainable "
            f"({100 * self.trainable_share:.3f} %)" + ("" if self.exact_params else " (estimated)"),
            f"  per {'process' if self.on_cpu else 'GPU'} ({self.device}, {self.gpus} device(s)):",
        ]
        for key, value in self.breakdown.items():
            if abs(value) >= 0.5 * MB:
                lines.append(f"    {key:<34}{gb(value)} GB")
        lines.append(f"    {'total':<34}{gb(self.peak_bytes)} GB")
        if self.cpu_breakdown:
            lines.append("  CPU memory for offload (per machine):")
            for key, value in self.cpu_breakdown.items():
                lines.append(f"    {key:<34}{gb(value)} GB")
        lines.append(f"  time: ~{self.seconds_per_step:.3g} s per optimizer step "
                     f"({self.tokens_per_step:,} tokens, {self.flops_per_step:.3g} FLOPs)")
        lines.append(f"  verdict: {self.verdict}")
        for s in self.suggestions:
            lines.append(f"    - {s['change']}: {s['peak_gb']:.1f} GB per GPU" + (" (fits)" if s["fits"] else ""))
        for note in self.notes:
            lines.append(f"  note: {note}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


def _human(n: int) -> str:
    return f"{n / 1e9:.3f}B" if n >= 1e9 else f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n:,}"


# ---- the model ----------------------------------------------------------------------------------------


def _device(device: str) -> Device:
    if device in DEVICES:
        return DEVICES[device]
    low = device.lower()
    for name, d in DEVICES.items():
        if name.lower() == low or name.lower().replace("-", "") == low.replace("-", "").replace(" ", ""):
            return d
    if low == "cpu":
        return DEVICES["CPU"]
    for name, d in DEVICES.items():  # "NVIDIA H100 80GB HBM3" -> H100-80GB
        if name.split("-")[0].lower() in low:
            return d
    if any(word in low for word in ("nvidia", "geforce", "tesla", "quadro", "radeon", "instinct")):
        return Device(device, 0, 100, 50)  # a GPU not in the table: memory needs no throughput figures
    raise KeyError(f"unknown device {device!r}; known: {', '.join(DEVICES)}")


def _quantized_module(m: S.Module, bits: Optional[int]) -> bool:
    """bitsandbytes quantizes linear layers only, and ftkit keeps the LM and task heads unquantized."""
    if not bits or m.kind != "linear":
        return False
    return not set(m.name.split(".")) & set(S.HEAD_NAMES + ("pre_classifier",))


def _weight_bytes(shapes: S.Shapes, bits: Optional[int], quant_type: str, double_quant: bool,
                  dtype_bytes: int) -> dict[str, float]:
    """Bytes of the base weights by storage type."""
    out = {"fp32": 0.0, "bf16/fp16": 0.0, "int8": 0.0, quant_type: 0.0}
    other_bytes = 4 if bits else dtype_bytes  # prepare_model_for_kbit_training casts the rest to fp32
    for m in shapes.modules:
        if _quantized_module(m, bits):
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


def _adapter_inputs(shapes: S.Shapes, method, options, act_bytes: int) -> float:
    """Bytes per token an adapter keeps besides the base layer's: its dropped-out input and dropout mask
    (when its dropout is on) and its rank-r intermediate output."""
    if method.name == "shadow":
        # ShadowPEFT: its own decoder layers run over every token, and every block injects through a dropout
        # and two d -> r -> d networks
        h, r = shapes.hidden, options.r
        layers = options.shadow_num_hidden_layers or 1
        backbone = layers * ((11 * h + 4 * shapes.intermediate) * act_bytes + 4 * h * 4)
        return backbone + shapes.num_blocks * (h * (2 * act_bytes + 1) + 4 * r * act_bytes)
    if method.kind != "adapter":
        return 0.0
    dropout = next((getattr(options, k) for k in type(options).model_fields
                    if k.endswith("dropout") and k not in ("module_dropout", "rank_dropout")), 0.0) or 0.0
    rank = getattr(options, "r", None) or getattr(options, "init_r", None) or 0
    try:
        mods = S.targets_of(shapes, options, _mapping_of(method))
    except Exception:
        return 0.0
    # dropout's output, kept by the adapter's first matrix, and a copy for the dropout's backward (measured:
    # LoRA on all seven linear layers of a Llama keeps about two input-sized tensors per adapted layer)
    return sum((m.d_in * (2 * act_bytes + 1) if dropout > 0 else 0) + rank * act_bytes for m in mods)


def _adapter_weight_space(shapes: S.Shapes, method, options, act_bytes: int) -> float:
    """Bytes an adapter keeps that scale with weights, not tokens: HRA chains r Householder reflections
    into an in x in matrix (each step kept for backward) and multiplies the weight by it."""
    if method.name != "hra":
        return 0.0
    try:
        mods = S.targets_of(shapes, options, "HRA")
    except Exception:
        return 0.0
    return sum(options.r * m.d_in * m.d_in + m.d_in * m.d_out for m in mods) * act_bytes


def _mapping_of(method) -> Optional[str]:
    """The peft target mapping a method's defaults come from (its peft type's, LoRA's for the LoRA family)."""
    peft_type = method.peft_type or "LORA"
    return {"LN_TUNING": "LNTUNING", "ADAPTION_PROMPT": None}.get(peft_type, peft_type)


def first_grad_layer(shapes: S.Shapes, method, options) -> int:
    """The lowest transformer block the backward pass reaches; blocks below it keep no activations."""
    if method.name == "freeze" and not options.trainable_patterns:
        return max(0, shapes.num_blocks - options.trainable_layers)
    if method.name == "adaption_prompt":
        return max(0, shapes.layers - options.adapter_layers)
    return 0


def activation_bytes(shapes: S.Shapes, batch: int, seq: int, act_bytes: int, checkpointing: bool = False,
                     fused_attention: bool = True, adapter_inputs: float = 0.0, first_layer: int = 0) -> dict:
    """Bytes autograd keeps for one micro-batch (see the module docstring for the accounting).

    Per layer, in elements per token: the norms' inputs (fp32 for RMSNorm, which upcasts), the input of
    every linear layer (measured on torch 2.13: LoRA with dropout keeps as much as full training; methods
    that keep no copy of a frozen layer's input, such as BEFT, LayerNorm tuning, HiRA, MiSS or Lily,
    keep 10-20 % less, so for them this is an over-estimate),
    q, k, v and the output kept by fused attention (plus a·s softmax scores with eager attention), and
    the MLP's activation input (with gating also its output and the up branch). Dropout masks only where
    dropout is on. Checkpointing keeps each layer's input and recomputes one layer at a time (its
    activations and their gradients alive together: two layers' worth).
    """
    b, s, h = batch, seq, shapes.hidden
    a = shapes.heads
    kv = shapes.kv_heads * shapes.head_dim
    q = shapes.heads * shapes.head_dim
    inter = shapes.intermediate
    cfg = shapes.config
    attn_drop = float(cfg.get("attention_dropout", cfg.get("attention_probs_dropout_prob", 0.0)) or 0.0)
    hid_drop = float(cfg.get("hidden_dropout_prob", cfg.get("resid_pdrop", cfg.get("dropout_rate", 0.0))) or 0.0)
    gated = shapes.model_type in ("llama", "mistral", "qwen2", "phi3", "gemma", "gemma2", "phi3small") or (
        shapes.model_type == "t5" and str(cfg.get("feed_forward_proj", "")).startswith("gated"))
    rms = shapes.model_type not in ("bert", "phi3small")

    def layer(cross: bool = False) -> float:
        e = 0.0  # elements kept at the activation dtype
        f32 = 0.0  # elements kept in fp32 (RMSNorm upcasts its input)
        masks = 0.0  # bytes of dropout masks
        norms = 2 + int(cross)
        if rms:
            f32 += 2 * h * norms
        else:
            e += 2 * h * norms
        attentions = 1 + int(cross)
        # q/k/v input, q, k, v and the attention output, the o_proj input
        e += attentions * (h + q + 2 * kv + q + q)
        if not fused_attention:
            e += attentions * a * s * (1 + int(attn_drop > 0))
            masks += attentions * a * s * int(attn_drop > 0)
        if hid_drop > 0:
            masks += (2 + int(cross)) * h
            e += (2 + int(cross)) * h
        # MLP: its input, the activation input (gated: also its output and the up branch), the down_proj input
        e += h + (3 * inter if gated else inter) + inter
        return (e * act_bytes + f32 * 4 + masks) * b * s

    counted = [(i, False) for i in range(shapes.layers)]
    if shapes.is_encoder_decoder:
        counted += [(shapes.layers + i, True) for i in range(shapes.decoder_layers)]
    per_layer = [layer(cross) for i, cross in counted if i >= first_layer]
    if not per_layer:
        per_layer = [0.0]
    if checkpointing:
        layers_b = len(per_layer) * b * s * h * act_bytes + 2 * max(per_layer)
    else:
        layers_b = sum(per_layer)
    out = {"activations (layers)": layers_b}
    if adapter_inputs:  # recomputed layer by layer under checkpointing, like the layers themselves
        out["activations (adapters)"] = adapter_inputs * b * s / (shapes.total_layers if checkpointing else 1)
    if shapes.model_kind in ("causal_lm", "seq2seq"):
        # the loss upcasts the logits to fp32; at the start of backward the saved log-softmax, its gradient
        # and the logits' gradient are alive together: 12 bytes per logit
        out["activations (logits + loss)"] = b * s * shapes.vocab * 12
    else:
        out["activations (logits + loss)"] = b * s * h * act_bytes
    return out


def _defaults(config) -> dict:
    t, q, d = config.training, config.quantization, config.distributed
    return dict(batch=t.batch_size, seq=t.max_seq_length, accum=t.gradient_accumulation_steps,
                checkpointing=t.gradient_checkpointing, optimizer=t.optimizer, precision=t.precision,
                dtype=config.model.dtype, bits=config.bits, quant_type=q.quant_type, double_quant=q.double_quant,
                zero_stage=d.zero_stage, offload_optimizer=d.offload_optimizer, offload_params=d.offload_params)


def _as_config(config):
    from .config import RunConfig

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


def estimate(config, gpus: Optional[int] = None, gpu_memory_gb: Optional[float] = None,
             device: str = "A100-80GB", shapes: Optional[S.Shapes] = None, suggest: bool = True,
             **overrides) -> Estimate:
    """Predict ``config``'s per-device peak memory, trainable parameters and step time.

    ``config``: a RunConfig, a dict, a YAML/JSON path or a preset name. ``gpus``: devices the run spans
    (default: the config's processes x nodes). ``gpu_memory_gb``: memory of each (default: the device's).
    ``device``: a name from ``DEVICES`` ("A100-80GB", "H100-80GB", "RTX-4090", "CPU", ...).
    ``overrides``: batch, seq, accum, checkpointing, optimizer, precision, dtype, bits, quant_type,
    double_quant, zero_stage, offload_optimizer, offload_params (what the suggestions try).
    """
    config = _as_config(config)
    dev = _device(device)
    world = gpus if gpus is not None else config.distributed.num_processes * config.distributed.num_nodes
    world = max(1, int(world))
    memory_gb = gpu_memory_gb if gpu_memory_gb is not None else dev.memory_gb
    opts = {**_defaults(config), **overrides}
    shapes = shapes or S.from_run_config(config)
    method, options = config.method_spec, config.method_options
    notes: list[str] = []
    on_cpu = dev.kind == "cpu"

    # ---- precision ---------------------------------------------------------------------------------
    if opts["dtype"] == "auto":
        dtype = "bfloat16" if (not on_cpu and dev.bf16) else "float32"
    else:
        dtype = opts["dtype"]
    precision = opts["precision"]
    if precision == "auto":
        precision = "bf16" if (not on_cpu and dev.bf16) else "fp32"
    w_bytes = DTYPE_BYTES[dtype]
    act_bytes = 2 if precision in ("bf16", "fp16") else w_bytes
    if opts["bits"] and not on_cpu:
        act_bytes = 2 if dev.bf16 else 4  # compute dtype auto: bf16 where the GPU has it

    # ---- parameters --------------------------------------------------------------------------------
    from .methods import BuildContext

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
    total = base_total + adapter_params

    # ---- weights, gradients, optimizer -------------------------------------------------------------
    stage = opts["zero_stage"]
    deepspeed = stage is not None
    n = world if deepspeed else 1
    weights = _weight_bytes(shapes, opts["bits"], opts["quant_type"], opts["double_quant"], w_bytes)
    # trainable tensors: full fine-tuning trains the weights in their dtype; adapters and saved heads are fp32
    if full:
        t_bytes = w_bytes
        head_copy = 0.0
    else:
        t_bytes = 4
        head_copy = (trainable - adapter_params) * 4.0  # modules_to_save: a trained copy of the head
    adapter_w = adapter_params * 4.0 + head_copy
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

    breakdown: dict[str, float] = {}
    cpu_side: dict[str, float] = {}
    param_part = 1 / n if stage == 3 else 1.0
    for kind, value in weights.items():
        breakdown[f"base weights ({kind})"] = value * param_part
    if adapter_w:
        breakdown["trainable weights (adapters, heads)"] = adapter_w * param_part
    if stage == 3 and opts["offload_params"] != "none":
        moved = sum(v for k, v in breakdown.items() if k.startswith(("base weights", "trainable weights")))
        for k in [k for k in breakdown if k.startswith(("base weights", "trainable weights"))]:
            breakdown[k] = 0.0
        cpu_side["parameters (offloaded)"] = moved * n
        notes.append("ZeRO-3 parameter offload: each layer's weights are fetched from CPU as it runs")
    opt_part = 1 / n if stage in (1, 2, 3) else 1.0
    grad_part = 1 / n if stage in (2, 3) else 1.0
    opt_total = (master + opt_b) * opt_part
    if opts["offload_optimizer"] != "none" and stage in (1, 2, 3):
        cpu_side["optimizer states + fp32 masters (offloaded)"] = opt_total * n
        if stage in (2, 3):  # ZeRO-Offload steps on CPU: fp32 gradients move there too
            cpu_side["fp32 gradients for the CPU step"] = trainable * 4.0
        opt_total = 0.0
    if master:
        breakdown["fp32 master weights"] = master * opt_part if opts["offload_optimizer"] == "none" else 0.0
        opt_total -= master * opt_part if opts["offload_optimizer"] == "none" else 0.0
    grads = grad_bytes * grad_part
    breakdown["optimizer states"] = max(0.0, opt_total)
    if deepspeed and on_cpu:
        breakdown["DeepSpeed engine buffers"] = CPU_ZERO_GRAD_COPIES[stage] * trainable * t_bytes + (
            (CPU_ZERO3_WEIGHT_COPIES if opts["offload_params"] == "none" else 1.0) * sum(weights.values())
            if stage == 3 else 0.0)
    elif deepspeed and stage in (1, 2) and n > 1:
        breakdown["ZeRO communication buckets"] = min(5e8, trainable) * t_bytes
    if stage == 3 and not on_cpu:
        largest = max((sum(m.numel for m in shapes.modules if m.name.startswith(f"{shapes.blocks}.{i}."))
                       for i in range(shapes.num_blocks)), default=0)
        breakdown["ZeRO-3 gathered layers"] = 2 * largest * w_bytes

    # ---- activations and gradients ----------------------------------------------------------------
    fused = config.model.attn_implementation != "eager"
    seq = opts["seq"]
    if method.kind == "prompt" and method.name in ("prompt_tuning", "p_tuning", "cpt"):
        seq += getattr(options, "num_virtual_tokens", 0) or 0  # virtual tokens lengthen every sequence
    acts = activation_bytes(shapes, opts["batch"], seq, act_bytes, opts["checkpointing"], fused,
                            _adapter_inputs(shapes, method, options, act_bytes),
                            first_grad_layer(shapes, method, options))
    weight_space = _adapter_weight_space(shapes, method, options, act_bytes)
    if weight_space:
        acts["activations (adapter weight products)"] = weight_space
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
        # offloading to the CPU on a CPU machine keeps the bytes in the same process
        for key, value in cpu_side.items():
            breakdown[f"{key} (host)"] = value / n
        breakdown["framework overhead"] = (CPU_DISTRIBUTED_MB if deepspeed or world > 1 else CPU_RUNTIME_MB) * MB
    else:
        allocated = sum(breakdown.values())
        breakdown["allocator slack"] = allocated * (GPU_FRAGMENTATION - 1)
        breakdown["framework overhead"] = CUDA_CONTEXT_MB * MB

    # ---- time ---------------------------------------------------------------------------------------
    tokens = opts["batch"] * seq * opts["accum"]
    if full:
        flops = 6.0 * base_total * tokens
    else:
        flops = 4.0 * base_total * tokens + 6.0 * trainable * tokens
    if opts["checkpointing"]:
        flops += 2.0 * base_total * tokens
    attn = 4.0 * opts["batch"] * seq * seq * shapes.heads * shapes.head_dim * shapes.total_layers * opts["accum"]
    flops += attn * (3 + int(opts["checkpointing"]))
    peak = (dev.tflops_16 if act_bytes == 2 else dev.tflops_32) * 1e12
    speed = peak * EFFICIENCY[dev.kind] / QUANT_SLOWDOWN.get(opts["bits"] or 0, 1.0)
    seconds = flops / speed * METHOD_SLOWDOWN.get(method.name, 1.0) if speed else float("nan")
    if deepspeed and opts["offload_optimizer"] != "none" and not on_cpu:
        # gradients down and updated fp32 parameters up each step, and the Adam step on the CPU
        seconds += trainable / n * 8 / PCIE_BYTES_PER_S + trainable / n / CPU_ADAM_PARAMS_PER_S
    if stage == 3 and opts["offload_params"] != "none" and not on_cpu:
        # every rank fetches every layer's weights from the CPU in forward, recompute and backward
        seconds += 3 * base_total * w_bytes / PCIE_BYTES_PER_S * opts["accum"]

    settings = {**opts, "device_kind": dev.kind, "dtype_resolved": dtype, "precision_resolved": precision,
                "world": world}
    est = Estimate(
        model=config.model_name, method=method.name, task=config.task.name, device=dev.name, gpus=world,
        gpu_memory_gb=memory_gb, total_params=total, trainable_params=trainable, breakdown=breakdown,
        cpu_breakdown=cpu_side, flops_per_step=flops, seconds_per_step=seconds, tokens_per_step=tokens,
        settings=settings, notes=notes, exact_params=exact,
    )
    if suggest and not est.fits:
        est.suggestions = suggestions(config, est, gpus=world, gpu_memory_gb=memory_gb, device=device,
                                      shapes=shapes, **overrides)
    return est


def suggestions(config, est: Estimate, shapes: S.Shapes, **kwargs) -> list[dict]:
    """Settings to change, in the order to try them, each applied on top of the ones before."""
    opts = dict(est.settings)
    base_kwargs = {k: v for k, v in kwargs.items() if k in ("gpus", "gpu_memory_gb", "device")}
    over = {k: v for k, v in kwargs.items() if k not in base_kwargs}
    method = config.method_spec
    steps: list[tuple[str, dict, Any]] = []
    if not opts["checkpointing"]:
        steps.append(("turn on training.gradient_checkpointing", {"checkpointing": True}, None))
    if opts["batch"] > 1:
        steps.append((f"training.batch_size 1 with gradient_accumulation_steps {opts['batch'] * opts['accum']}",
                      {"batch": 1, "accum": opts["batch"] * opts["accum"]}, None))
    if not opts["bits"]:
        if method.quantized_base:
            steps.append(("quantization.bits 4 (QLoRA-style nf4 base)", {"bits": 4}, None))
        elif method.name == "full":
            steps.append(("method qlora (LoRA on a 4-bit base) instead of full fine-tuning", {"bits": 4},
                          {"method.name": "qlora"}))
    world = est.gpus
    stage = opts["zero_stage"]
    if world > 1:
        for next_stage in (1, 2, 3):
            if (stage is None or stage < next_stage) and not (next_stage == 3 and (opts["bits"] or not method.zero3)):
                steps.append((f"distributed.zero_stage {next_stage}", {"zero_stage": next_stage}, None))
    if stage is not None or world > 1:
        steps.append(("distributed.offload_optimizer cpu", {"offload_optimizer": "cpu",
                                                            "zero_stage": stage or 2}, None))
        if not opts["bits"] and method.zero3:
            steps.append(("distributed.offload_params cpu (ZeRO-3)", {"offload_params": "cpu", "zero_stage": 3,
                                                                       "offload_optimizer": "cpu"}, None))
    else:
        steps.append(("distributed.zero_stage 2 with offload_optimizer cpu (DeepSpeed on one GPU)",
                      {"zero_stage": 2, "offload_optimizer": "cpu"}, None))
    out = []
    applied: dict = dict(over)
    current = config
    for change, values, swap in steps:
        applied.update(values)
        if swap:
            try:
                current = current.update(swap)
            except Exception:
                continue
        try:
            e = estimate(current, shapes=None if swap else shapes, suggest=False, **base_kwargs, **applied)
        except Exception:
            continue
        out.append({"change": change, "peak_gb": round(e.peak_gb, 2), "fits": e.fits})
        if e.fits:
            break
    return out


def predicted_peak_mb(config, device: str = "CPU", world: int = 1) -> float:
    """The number a finished run's measurement is compared with: RSS above the process's start on a CPU,
    ``torch.cuda.max_memory_allocated`` on a GPU."""
    return estimate(config, gpus=world, device=device, suggest=False).allocated_mb
