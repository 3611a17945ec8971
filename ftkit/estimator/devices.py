"""Devices the estimator knows, and the constants of its memory and time models.

Units: every figure is in binary units. ``GiB`` is 2**30 bytes. Each card is listed with the capacity
``torch.cuda.get_device_properties(0).total_memory`` reports for it, in GiB: an "80GB" A100 has 80 GiB,
an "80GB" H100 79.6, an L40S 45, an L4 or A10 22.5, a T4 15.
"""
from __future__ import annotations

from dataclasses import dataclass

MiB = MB = 2 ** 20
GiB = GB = 2 ** 30


@dataclass(frozen=True)
class Device:
    name: str
    memory_gb: float  # GiB
    tflops_16: float  # dense bf16/fp16 tensor throughput
    tflops_32: float  # fp32 (TF32 where the hardware uses it for matmuls)
    bf16: bool = True
    kind: str = "cuda"


#: memory in GiB as the driver reports it; peak dense throughput from the vendors' data sheets (no sparsity)
DEVICES = {d.name: d for d in (
    Device("H200", 140, 989, 494),
    Device("H100-80GB", 79.6, 989, 494),
    Device("H100-PCIe", 79.6, 756, 378),
    Device("A100-80GB", 80, 312, 156),
    Device("A100-40GB", 40, 312, 156),
    Device("A6000", 48, 155, 77),
    Device("L40S", 45, 362, 183),
    Device("A10", 22.5, 125, 62.5),
    Device("L4", 22.5, 121, 60),
    Device("RTX-4090", 24, 165, 82.6),
    Device("RTX-3090", 24, 71, 35.6),
    Device("V100-32GB", 32, 125, 15.7, bf16=False),
    Device("T4", 15, 65, 8.1, bf16=False),
    Device("CPU", 0, 0.2, 0.2, bf16=False, kind="cpu"),
)}
#: share of peak throughput a fine-tuning step reaches (model FLOPs utilisation)
EFFICIENCY = {"cuda": 0.4, "cpu": 0.5}
#: 4/8-bit bases dequantize each weight at every use: slower per FLOP
QUANT_SLOWDOWN = {4: 1.5, 8: 1.3}
#: host-device bandwidth (PCIe 4.0 x16, achieved) and DeepSpeed CPU-Adam speed, for offload
PCIE_BYTES_PER_S = 20e9
CPU_ADAM_PARAMS_PER_S = 1.5e9

#: GPU memory a process holds outside the PyTorch allocator: CUDA context, cuBLAS/cuDNN workspaces. Not in
#: ``max_memory_allocated`` nor ``max_memory_reserved``; nvidia-smi shows it.
CUDA_CONTEXT_MB = 800
#: allocator slack: cached blocks and fragmentation, ``max_memory_reserved`` over ``max_memory_allocated``
GPU_FRAGMENTATION = 1.08
#: headroom kept free when judging whether a run fits; between TIGHT_MARGIN and FIT_MARGIN a run is "tight"
FIT_MARGIN = 0.95
TIGHT_MARGIN = 1.02

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
#: glibc's heap keeps freed activation blocks mapped and hands them out again only when sizes line up, and
#: backward's transient gradients of the activations come on top of the saved tensors, so the RSS
#: high-water mark runs above the saved activations' bytes. Refitted after the per-layer activation walk
#: on bench/memory.py's LoRA, IA3, LoRA all-linear, LoRA with checkpointing and MiniLM rows (factors
#: needed 1.25-1.73, median 1.5; the ZeRO rows were not re-measured).
CPU_TRANSIENT_FACTOR = 1.5

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
#: bitsandbytes' 8-bit states: one uint8 per element and an fp32 absmax per block of 256 (its blockwise
#: quantization; the two 256-entry quantization maps are negligible)
BNB_8BIT_STATE = 1 + 4 / 256
OPTIMIZER_STATES = {  # (states per parameter, bytes per state or None for "the parameter's own")
    "adamw_torch": (2, None), "adamw_torch_fused": (2, None), "adamw_bnb_8bit": (2, BNB_8BIT_STATE),
    "paged_adamw_8bit": (2, BNB_8BIT_STATE), "paged_adamw_32bit": (2, 4), "adafactor": (1, None), "sgd": (0, None),
}
#: optimizers whose states bitsandbytes pages into CUDA unified memory: not in ``max_memory_allocated``
PAGED_OPTIMIZERS = ("paged_adamw_8bit", "paged_adamw_32bit")


def lookup(device: str) -> Device:
    """A device by name, loosely: "A100-80GB", "a100 80gb", "NVIDIA H100 80GB HBM3", "cpu"."""
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
