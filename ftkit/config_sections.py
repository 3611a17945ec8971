"""The sections of ``RunConfig``: model, data, quantization, distributed, training, what-if, and the
method and task sections built from their registries (one options sub-section per entry)."""
from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, create_model, field_validator

from .methods import methods
from .registry import Registry
from .schema import Section, field
from .tasks import tasks


def _none_or_int(value: Any) -> Any:
    """Accept ``none``/``null`` and numbers written as text, as YAML and the CLI give them."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("none", "null", "", "off", "false"):
            return None
        if text.lstrip("-").isdigit():
            return int(text)
    return value


class ModelSection(Section):
    name_or_path: str = field(
        "auto",
        "Hub id (e.g. microsoft/Phi-3-mini-4k-instruct) or local folder. 'auto' uses the task's "
        "embedded default: builtin:minilm, builtin:tiny-llama or builtin:tiny-t5.",
        min_length=1,
    )
    revision: Optional[str] = field(None, "Branch, tag or commit of a Hub model.", advanced=True)
    trust_remote_code: bool = field(False, "Run modelling code shipped with the model. Only for models you trust.")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = field(
        "auto", "Dtype of the (unquantized) base weights. auto: float32 on CPU, bfloat16 on a GPU that has it."
    )
    attn_implementation: Optional[Literal["eager", "sdpa", "flash_attention_2"]] = field(
        None, "Attention kernel; empty lets transformers choose.", advanced=True
    )


class DataSection(Section):
    source: str = field(
        "builtin",
        "'builtin' (the task's own small dataset), a .jsonl/.json/.csv/.tsv/.parquet file, a CoNLL file "
        "(.conll, or .txt for ner), or a folder saved with datasets' save_to_disk.",
        min_length=1,
    )
    eval_source: Optional[str] = field(None, "Separate evaluation file or folder; empty: split from source.")
    eval_fraction: float = field(0.1, "Share of source held out for evaluation when eval_source is empty.", gt=0, lt=0.9)
    columns: dict[str, str] = field(
        factory=dict, help="Map the task's column names to yours, e.g. {text: review, label: stars}; in a CoNLL "
        "file, column numbers from 1, e.g. {tags: 4} (default: the first word column, the last tag column)."
    )
    max_train_samples: Optional[int] = field(None, "Use at most this many training rows.", ge=1)
    max_eval_samples: Optional[int] = field(None, "Use at most this many evaluation rows.", ge=1)

    @field_validator("columns", mode="before")
    @classmethod
    def _column_numbers(cls, value: Any) -> Any:
        """CoNLL columns are chosen by number (``tags: 4``): numbers are taken as their text."""
        if isinstance(value, dict):
            return {k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v for k, v in value.items()}
        return value


class QuantizationSection(Section):
    bits: Optional[Literal[4, 8]] = field(
        None, "Load the base model in 4 or 8 bits through bitsandbytes (QLoRA); none keeps it unquantized."
    )
    quant_type: Literal["nf4", "fp4"] = field("nf4", "4-bit data type: nf4 (QLoRA paper) or fp4.")
    double_quant: bool = field(True, "Quantize the quantization constants too (~0.4 bit/param saved).")
    compute_dtype: Literal["auto", "float32", "bfloat16", "float16"] = field(
        "auto", "Dtype matmuls run in. auto: bfloat16 on GPUs that have it, float32 on CPU."
    )

    _bits = field_validator("bits", mode="before")(classmethod(lambda cls, v: _none_or_int(v)))


class SlurmSection(Section):
    partition: Optional[str] = field(None, "Slurm partition (#SBATCH --partition); empty: the cluster's default.")
    nodes: int = field(1, "Machines to allocate (#SBATCH --nodes); one srun task per machine runs torchrun.",
                       ge=1, le=1024)
    gpus_per_node: int = field(0, "GPUs per machine (#SBATCH --gpus-per-node); 0: CPU ranks, "
                                  "distributed.num_processes of them per machine.", ge=0, le=64)
    time: str = field("01:00:00", "Wall-clock limit (#SBATCH --time), as Slurm writes it: MM, HH:MM:SS or D-HH:MM:SS.",
                      pattern=r"^(\d+-)?\d{1,2}(:\d{2}){0,2}$")
    account: Optional[str] = field(None, "Account charged for the job (#SBATCH --account).")
    extra: list[str] = field(factory=list, help="More #SBATCH lines, each without the '#SBATCH ' prefix, e.g. "
                                                "--constraint=a100.")


class DistributedSection(Section):
    launcher: Literal["auto", "thread", "python", "torchrun", "deepspeed", "slurm"] = field(
        "auto",
        "How the run starts. auto: a thread in the notebook kernel for one device, deepspeed with a ZeRO "
        "stage, torchrun for several processes; slurm: a Slurm batch job (distributed.slurm).",
    )
    num_processes: int = field(1, "Processes (GPUs) per machine.", ge=1, le=1024)
    gpus: Optional[list[int]] = field(None, "Which GPUs to use (indices); empty: the first num_processes.")
    zero_stage: Optional[Literal[0, 1, 2, 3]] = field(
        None,
        "DeepSpeed ZeRO stage: 0 plain data parallel, 1 shards optimizer states, 2 + gradients, "
        "3 + parameters. none: no DeepSpeed.",
    )
    zero_preset: Optional[str] = field(
        None, "DeepSpeed settings by preset name (ftkit.zero.presets), one of that stage's; empty: "
        "the stage's own (zero<stage>).", advanced=True)
    offload_optimizer: Literal["none", "cpu", "nvme"] = field(
        "none", "Keep optimizer states (and the step) in CPU memory or on NVMe (ZeRO 1-3)."
    )
    offload_params: Literal["none", "cpu", "nvme"] = field(
        "none", "Keep parameters in CPU memory or on NVMe between uses (ZeRO-3 only)."
    )
    nvme_path: Optional[str] = field(None, "Folder on a fast local NVMe drive for nvme offload.")
    num_nodes: int = field(1, "Machines taking part.", ge=1, le=1024, advanced=True)
    node_rank: int = field(0, "This machine's index among num_nodes.", ge=0, advanced=True)
    master_addr: str = field("127.0.0.1", "Address of node 0, reachable from every node.", advanced=True)
    master_port: Optional[int] = field(None, "Port on node 0; empty picks a free one.", ge=1024, le=65535, advanced=True)
    hostfile: Optional[str] = field(None, "DeepSpeed hostfile listing machines and their GPU slots.", advanced=True)
    rendezvous_timeout: int = field(
        300, "Seconds node 0 waits for every machine to join (torchrun's c10d rendezvous) before the run fails.",
        ge=5, le=86400, advanced=True)
    slurm: SlurmSection = field(factory=SlurmSection, help="The Slurm job (launcher slurm): partition, nodes, "
                                "GPUs, time limit.", advanced=True)

    @field_validator("zero_stage", mode="before")
    @classmethod
    def _stage(cls, v: Any) -> Any:
        return _none_or_int(v)

    @field_validator("zero_preset")
    @classmethod
    def _preset(cls, v: Optional[str]) -> Optional[str]:
        from .zero import presets

        if v is not None and v not in presets:
            raise ValueError(f"unknown ZeRO preset {v!r}{presets.suggest(v)}; known: {', '.join(presets.names())}")
        return v

    @field_validator("offload_optimizer", "offload_params", mode="before")
    @classmethod
    def _offload(cls, v: Any) -> Any:
        if v is True:
            return "cpu"
        if v is False or v is None:
            return "none"
        return v


class TrainingSection(Section):
    learning_rate: float = field(2e-4, "Peak learning rate.", gt=0, le=1)
    lr_scheduler: Literal[
        "linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup", "inverse_sqrt"
    ] = field("linear", "How the learning rate changes after warm-up.")
    warmup_ratio: float = field(0.0, "Share of the steps spent warming the learning rate up from 0.", ge=0, lt=1)
    weight_decay: float = field(0.0, "AdamW weight decay.", ge=0, le=1)
    optimizer: Literal["adamw_torch", "adamw_torch_fused", "adafactor", "sgd", "adamw_bnb_8bit", "paged_adamw_8bit",
                       "paged_adamw_32bit"] = field(
        "adamw_torch", "Optimizer (transformers' names). 8-bit and paged ones come from bitsandbytes; paged states "
        "live in CUDA unified memory, shown apart by the estimate.", advanced=True
    )
    num_epochs: float = field(1.0, "Passes over the training data (when max_steps is empty).", gt=0, le=1000)
    max_steps: Optional[int] = field(None, "Stop after this many optimizer steps; overrides num_epochs.", ge=1)
    batch_size: int = field(8, "Examples per device per forward pass.", ge=1, le=65536)
    eval_batch_size: Optional[int] = field(None, "Examples per device for evaluation; empty: batch_size.", ge=1)
    gradient_accumulation_steps: int = field(1, "Forward passes per optimizer step.", ge=1, le=4096)
    max_seq_length: int = field(128, "Tokens per example; longer ones are truncated.", ge=8, le=1_048_576)
    precision: Literal["auto", "fp32", "bf16", "fp16"] = field(
        "auto", "Mixed precision. auto: bf16 on GPUs that have it, fp32 on CPU."
    )
    gradient_checkpointing: bool = field(False, "Recompute activations in backward: less memory, ~30 % slower.")
    gradient_checkpointing_reentrant: bool = field(
        False, "With gradient checkpointing: PyTorch's older reentrant implementation (use_reentrant=True); the "
        "default non-reentrant one supports more (no inputs that must require gradients). Same memory.",
        advanced=True)
    seed: int = field(42, "Seed for weights, data order and dropout: same seed, same loss curve.", ge=0, le=2**32 - 1)
    logging_steps: int = field(5, "Emit a step event with the loss every N steps.", ge=1)
    eval_steps: int = field(50, "Evaluate every N steps (and always at the end); 0: only at the end.", ge=0)
    save_steps: int = field(0, "Save a checkpoint every N steps (and on Stop); 0: only at the end.", ge=0)
    save_total_limit: Optional[int] = field(2, "Keep at most this many checkpoints.", ge=1, advanced=True)
    max_grad_norm: float = field(1.0, "Clip gradients to this norm; 0 turns clipping off.", ge=0, advanced=True)
    report_to: list[Literal["tensorboard", "mlflow", "wandb"]] = field(
        factory=list, help="Also log to these trackers (they must be installed).", advanced=True
    )
    # ---- memory and speed: each changes the run (engine/settings.py) and the estimate ----------------
    adapter_dtype: Literal["float32", "base"] = field(
        "float32", "Dtype of the adapter weights: float32 (peft's default, upcast on a 16-bit base) or the base "
        "model's own dtype (half the adapter memory, as other frameworks keep them).", advanced=True)
    fused_cross_entropy: bool = field(
        False, "Fuse the LM head with the loss (Liger kernels, transformers' use_liger_kernel): the logits are "
        "never held whole, the largest saving on large vocabularies. Needs the liger-kernel package.", advanced=True)
    torch_compile: bool = field(False, "Compile the model with torch.compile: faster steps after a slow first one.",
                                advanced=True)
    padding_free: bool = field(
        False, "Causal LM tasks: each batch as one row of its examples end to end, no padding (transformers' "
        "DataCollatorWithFlattening; position_ids restart per example, which the attention mask respects). "
        "Memory and time follow the mean length (whatif.mean_seq_length), not the longest.", advanced=True)


class WhatIfSection(Section):
    """Settings the estimate models but ftkit does not run: they change ``ftkit estimate`` only, which says so."""

    activation_offloading: bool = field(
        False, "Keep saved activations in pinned CPU memory between forward and backward (torchtune's "
        "enable_activation_offloading).")
    optimizer_in_backward: bool = field(
        False, "Apply and free each gradient as backward produces it (torchtune's optimizer_in_bwd).")
    mean_seq_length: Optional[int] = field(
        None, "Mean tokens per example with training.padding_free (the data's; ftkit.data.preview shows it); "
        "empty: max_seq_length.", ge=1, le=1_048_576)


def _choice_section(kind: str, registry: Registry, default: str, help: str) -> type[Section]:
    """A section with ``name`` plus one options sub-section per registered entry."""
    fields: dict[str, Any] = {"name": (str, Field(default, description=help))}
    for spec in registry:
        fields[spec.name] = (spec.options, Field(default_factory=spec.options, description=spec.summary))

    def check_name(cls, value: str) -> str:
        if value not in registry:
            raise ValueError(f"unknown {kind} {value!r}{registry.suggest(value)} (`ftkit {kind}s` lists them)")
        return value

    return create_model(
        f"{kind.title()}Section",
        __base__=Section,
        __validators__={"_name": field_validator("name")(classmethod(check_name))},
        **fields,
    )


MethodSection = _choice_section("method", methods, "lora", "Fine-tuning method; its options appear below it.")
TaskSection = _choice_section("task", tasks, "classification", "What the model learns to do.")
