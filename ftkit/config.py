"""``RunConfig``: the one typed description of a fine-tuning run.

The notebook form is generated from it, the CLI reads it from YAML, the worker
receives it as ``run_dir/config.json``. Methods and tasks add their own option
sections (``method.<name>``, ``task.<name>``) from their registries.
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import Field, PrivateAttr, ValidationError, create_model, field_validator, model_validator

from .errors import ConfigError, from_validation
from .methods import methods
from .registry import Registry
from .schema import Section, field
from .tasks import tasks

PRESETS_DIR = Path(__file__).parent / "presets"

#: Where a value came from, weakest first: the field's own default, the method's usual value (its
#: learning rate...), a preset, the user. "reset": a task option that fits only the built-in data,
#: cleared because the run reads the user's own data.
ORIGINS = ("default", "method", "preset", "user", "reset")


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key written twice in one mapping is an error, not a silent overwrite."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise ConfigError([(str(key), f"appears twice in one section (lines {seen[key]} and {line}); the "
                                          "second would silently replace the first: keep one")])
        seen[key] = line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def _leaves(data: dict, prefix: str = "") -> dict[str, Any]:
    """Dotted path -> value for every leaf of nested mappings."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_leaves(value, path + "."))
        else:
            out[path] = value
    return out


def _put(data: dict, path: str, value: Any) -> None:
    node = data
    *parents, last = path.split(".")
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[last] = value


def _is_set(origins: dict[str, str], path: str) -> bool:
    """Whether ``path`` (or a section holding it, or a value under it) was given explicitly."""
    return any(p == path or path.startswith(p + ".") or p.startswith(path + ".") for p in origins)


def _name_in(data: dict, section: str, default: str) -> Any:
    node = data.get(section)
    return node.get("name", default) if isinstance(node, dict) else default


def _unselected(data: dict) -> list[tuple[str, str]]:
    """Options written for a method (or task) that is not the chosen one: they would be ignored."""
    problems = []
    for section, registry, default in (("method", methods, "lora"), ("task", tasks, "classification")):
        node = data.get(section)
        name = _name_in(data, section, default)
        if not isinstance(node, dict) or not isinstance(name, str) or name not in registry:
            continue
        for key, value in node.items():
            if key == "name" or key == name or key not in registry:
                continue
            defaults = registry.get(key).options().model_dump(mode="json")
            if isinstance(value, dict) and all(defaults.get(k, object()) == v for k, v in value.items()):
                continue  # a full dump (every entry at its defaults) says nothing about this run
            problems.append((f"{section}.{key}", f"options for {key}, but {section}.name is {name!r}: they would be "
                                                 f"ignored. Move them under {section}.{name}, or set "
                                                 f"{section}.name: {key}"))
    return problems


def method_dependent() -> set[str]:
    """Config paths whose usual value depends on the method (every spec's training defaults)."""
    return {path for spec in methods for path in spec.training_defaults}


def builtin_only(task_name: str) -> dict[str, Any]:
    """Paths of a task's options that fit only its built-in data -> the value they take with the user's data."""
    if task_name not in tasks:
        return {}
    out = {}
    for fname, info in tasks.get(task_name).options.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if extra.get("builtin_data"):
            default = info.get_default(call_default_factory=True)
            out[f"task.{task_name}.{fname}"] = [] if isinstance(default, list) else None
    return out


def _apply_layers(data: dict, origins: dict[str, str]) -> None:
    """Fill what nobody set with the method's usual values; clear built-in-data options on user data."""
    name = _name_in(data, "method", "lora")
    if isinstance(name, str) and name in methods and all(isinstance(data.get(k, {}), dict) for k in ("training",)):
        for path, value in methods.get(name).training_defaults.items():
            if not _is_set(origins, path):
                _put(data, path, value)
                origins[path] = "method"
    source = data.get("data", {}).get("source", "builtin") if isinstance(data.get("data", {}), dict) else "builtin"
    task = _name_in(data, "task", "classification")
    if source != "builtin" and isinstance(task, str) and isinstance(data.get("task", {}), dict):
        for path, neutral in builtin_only(task).items():
            if origins.get(path) != "user":
                _put(data, path, neutral)
                origins[path] = "reset"


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


class RunConfig(Section):
    """Everything one fine-tuning run needs, validated before anything runs.

    Each value knows where it came from (``origin(path)``): its field's default, the method's usual
    value, a preset or the user. Values nobody set follow the method: switching ``method.name`` from
    lora to full moves an unset learning rate from LoRA's 2e-4 to full fine-tuning's 2e-5.
    """

    _origins: dict = PrivateAttr(default_factory=dict)

    name: Optional[str] = field(None, "A label for the run; it prefixes the run id.", max_length=64)
    runs_dir: Optional[str] = field(None, "Where runs are stored; empty: $FTKIT_RUNS_DIR or ./runs.")
    resume_from: Optional[str] = field(
        None, "Start from a checkpoint folder, or a run id (its latest checkpoint).", advanced=True
    )
    model: ModelSection = field(factory=ModelSection, help="The base model.")
    data: DataSection = field(factory=DataSection, help="Training and evaluation data.")
    task: TaskSection = field(factory=TaskSection, help="The task and its options.")
    method: MethodSection = field(factory=MethodSection, help="The fine-tuning method and its options.")
    quantization: QuantizationSection = field(factory=QuantizationSection, help="Quantizing the base model.")
    distributed: DistributedSection = field(factory=DistributedSection, help="Processes, GPUs and DeepSpeed ZeRO.")
    training: TrainingSection = field(factory=TrainingSection, help="Optimisation and cadence.")
    whatif: WhatIfSection = field(factory=WhatIfSection, help="What-ifs for the memory estimate only.")

    # ---- derived facts -----------------------------------------------------

    @property
    def method_spec(self):
        return methods.get(self.method.name)

    @property
    def task_spec(self):
        return tasks.get(self.task.name)

    @property
    def method_options(self):
        return getattr(self.method, self.method.name)

    @property
    def task_options(self):
        return getattr(self.task, self.task.name)

    @property
    def bits(self) -> Optional[int]:
        """Bits of the base model: the section's value, else what the method implies (QLoRA: 4)."""
        return self.quantization.bits or self.method_spec.implies_bits

    @property
    def model_name(self) -> str:
        return self.task_spec.default_model if self.model.name_or_path == "auto" else self.model.name_or_path

    @property
    def launcher(self) -> str:
        d = self.distributed
        if d.launcher != "auto":
            return d.launcher
        if d.zero_stage is not None:
            return "deepspeed"
        if d.num_processes > 1 or d.num_nodes > 1:
            return "torchrun"
        return "thread"

    # ---- rules across fields -----------------------------------------------

    @model_validator(mode="before")
    @classmethod
    def _layers(cls, data: Any) -> Any:
        """``RunConfig(method={"name": "full"})`` follows the method too (from_dict has done this already)."""
        if isinstance(data, dict) and not isinstance(data.get("training"), Section):
            data = copy.deepcopy(data)
            _apply_layers(data, {path: "user" for path in _leaves(data)})
        return data

    @model_validator(mode="after")
    def _cross_field(self) -> "RunConfig":
        problems = []
        spec, task, d = self.method_spec, self.task_spec, self.distributed
        reason = spec.refuses(task.model_kind)
        if reason:
            problems.append(("method.name", f"{spec.name} cannot train task {task.name!r}: {reason}; pick another method"))
        if self.bits and not spec.quantized_base:
            problems.append((
                "quantization.bits",
                f"{spec.name} cannot train a {self.bits}-bit base: quantized weights take no gradient updates"
                + ("" if spec.kind != "full" else "; pick an adapter method such as lora")
                + " or set quantization.bits to none",
            ))
        if self.bits and d.zero_stage == 3:
            problems.append((
                "distributed.zero_stage",
                f"ZeRO-3 partitions parameters, which DeepSpeed cannot do for {self.bits}-bit bitsandbytes "
                "weights; use zero_stage 2 or quantization.bits none",
            ))
        if d.zero_stage == 3 and not spec.zero3:
            problems.append(("distributed.zero_stage", f"{spec.name} does not run under ZeRO-3; use zero_stage 2"))
        if d.offload_params != "none" and d.zero_stage != 3:
            problems.append((
                "distributed.offload_params",
                "parameter offload needs zero_stage 3 (DeepSpeed ignores it below); set zero_stage 3 or offload_params none",
            ))
        if d.offload_optimizer != "none" and not d.zero_stage:
            problems.append((
                "distributed.offload_optimizer",
                "optimizer offload needs a ZeRO stage of 1-3; set distributed.zero_stage",
            ))
        if "nvme" in (d.offload_optimizer, d.offload_params) and not d.nvme_path:
            problems.append(("distributed.nvme_path", "nvme offload needs a folder on an NVMe drive; set nvme_path"))
        if d.launcher == "thread" and (d.num_processes > 1 or d.num_nodes > 1 or d.zero_stage is not None):
            problems.append((
                "distributed.launcher",
                "thread runs one process in the notebook kernel; use auto, torchrun or deepspeed for several "
                "processes or DeepSpeed",
            ))
        if d.node_rank >= d.num_nodes:
            problems.append(("distributed.node_rank", f"node_rank {d.node_rank} is not below num_nodes {d.num_nodes}"))
        if d.num_nodes > 1 and not d.master_port:
            problems.append(("distributed.master_port", "several machines need a fixed master_port"))
        if d.launcher == "python" and (d.num_processes > 1 or d.num_nodes > 1):
            problems.append((
                "distributed.launcher",
                "python starts one process; use torchrun or deepspeed for several processes or machines",
            ))
        if self.launcher == "deepspeed" and d.num_nodes > 1:
            if not d.hostfile:
                problems.append((
                    "distributed.hostfile",
                    "the deepspeed launcher reaches the other machines through a hostfile; set hostfile "
                    "or use launcher torchrun",
                ))
            if d.node_rank:
                problems.append((
                    "distributed.node_rank",
                    "the deepspeed launcher runs on node 0 and starts every machine itself; use node_rank 0, "
                    "or launcher torchrun to start each machine separately",
                ))
            if d.gpus is not None:
                problems.append((
                    "distributed.gpus",
                    "on several machines the deepspeed launcher takes GPU slots from the hostfile; leave gpus "
                    "empty or use launcher torchrun",
                ))
        if d.node_rank >= d.num_nodes:
            problems.append(("distributed.node_rank", f"must be < num_nodes ({d.num_nodes}), got {d.node_rank}"))
        if d.gpus is not None and len(d.gpus) != d.num_processes:
            problems.append((
                "distributed.gpus",
                f"lists {len(d.gpus)} GPUs for num_processes {d.num_processes}; make them match",
            ))
        if self.training.padding_free and task.model_kind != "causal_lm":
            problems.append(("training.padding_free", f"task {task.name!r} trains a {task.model_kind} model; "
                             "padding-free batches are for the causal LM tasks (domain, chat, creative)"))
        elif self.training.padding_free and spec.kind == "prompt":
            problems.append(("training.padding_free", f"{spec.name} adds virtual tokens: peft drops the position_ids "
                             "that mark where each packed example starts, or passes its prefix as a cache, with which "
                             "transformers looks for no packed examples; turn padding_free off"))
        if problems:
            raise ValueError("\n".join(f"{p}: {m}" for p, m in problems))
        return self

    # ---- construction and serialisation ------------------------------------

    @classmethod
    def from_dict(cls, data: Any, source: Optional[str] = None, origin: str = "user",
                  origins: Optional[dict[str, str]] = None) -> "RunConfig":
        """Validate ``data``; every value in it counts as set by ``origin`` (or as ``origins`` says per path)."""
        if not isinstance(data, dict):
            raise ConfigError([("", f"a config is a mapping of sections, got {type(data).__name__}")], source)
        data = copy.deepcopy(data)
        problems = _unselected(data)
        if problems:
            raise ConfigError(problems, source)
        origins = dict(origins) if origins is not None else {path: origin for path in _leaves(data)}
        _apply_layers(data, origins)
        try:
            config = cls.model_validate(data)
        except ValidationError as exc:
            raise from_validation(exc, cls, source) from None
        config._origins = origins
        return config

    def __eq__(self, other: Any) -> bool:  # the values, whatever their origins
        return isinstance(other, RunConfig) and self.model_dump() == other.model_dump()

    def origin(self, path: str) -> str:
        """Where the value at ``path`` came from: one of ``ORIGINS``."""
        for p in (path, *(path.rsplit(".", k)[0] for k in range(1, path.count(".") + 1))):
            if p in self._origins:
                return self._origins[p]
        if not self._origins and path in self.method_spec.training_defaults:
            return "method"  # built directly, RunConfig(...): the method's value was filled in
        return "default"

    def origins(self) -> dict[str, str]:
        """Dotted path -> origin for every value ``to_dict`` holds."""
        return {path: self.origin(path) for path in _leaves(self.to_dict())}

    def annotated_yaml(self) -> str:
        """The config as YAML with each value's origin as a comment (``# method``, ``# preset``...)."""
        lines: list[str] = []

        def walk(node: dict, prefix: str, indent: int) -> None:
            for key, value in node.items():
                path = f"{prefix}{key}"
                if isinstance(value, dict) and value:
                    lines.append(" " * indent + f"{key}:")
                    walk(value, path + ".", indent + 2)
                    continue
                text = yaml.safe_dump([value], default_flow_style=True, width=10**6).strip()[1:-1]
                origin = self.origin(path)
                note = {"reset": "reset: the preset's value fits only the built-in data"}.get(origin, origin)
                lines.append(" " * indent + f"{key}: {text}  # {note}")

        walk(self.to_dict(), "", 0)
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict:
        """Plain data; method and task keep only the chosen entry's options."""
        data = self.model_dump(mode="json")
        for section in ("method", "task"):
            chosen = data[section]["name"]
            data[section] = {"name": chosen, chosen: data[section][chosen]}
        return data

    @classmethod
    def from_yaml(cls, path: Union[str, os.PathLike], origin: str = "user") -> "RunConfig":
        text = _read(path)
        try:
            data = yaml.load(text, Loader=_UniqueKeyLoader)
        except yaml.YAMLError as exc:
            raise ConfigError([("", f"not valid YAML: {exc}")], str(path)) from None
        except ConfigError as exc:
            raise ConfigError(exc.problems, str(path)) from None
        if data is None:
            raise ConfigError([("", "the config file is empty (or holds only comments); write the sections to "
                                    "change, e.g. `task: {name: classification}`, or start from a preset with "
                                    "--preset demo")], str(path))
        return cls.from_dict(data, str(path), origin=origin)

    def to_yaml(self, path: Union[str, os.PathLike, None] = None) -> str:
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    def cli_args(self, preset: Optional[str] = None) -> list[str]:
        """The ``ftkit train --preset NAME --set path=value ...`` argv that trains this config."""
        from .config_cli import cli_args

        return cli_args(self, list_presets(), preset)

    def to_cli(self, preset: Optional[str] = None) -> str:
        """``cli_args`` as one shell line (the preset needing fewest changes, unless one is named)."""
        from .config_cli import shell_line

        return shell_line(self.cli_args(preset))

    @classmethod
    def from_json(cls, path: Union[str, os.PathLike]) -> "RunConfig":
        try:
            data = json.loads(_read(path))
        except json.JSONDecodeError as exc:
            raise ConfigError([("", f"not valid JSON: {exc}")], str(path)) from None
        return cls.from_dict(data, str(path))

    def to_json(self, path: Union[str, os.PathLike, None] = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text)
        return text

    def set(self, path: str, value: Any) -> "RunConfig":
        """A new, validated config with ``path`` (dotted, e.g. ``method.lora.r``) set to ``value``."""
        return self.update({path: value})

    def update(self, changes: dict[str, Any]) -> "RunConfig":
        """A new, validated config with several dotted paths set at once (they count as the user's).

        Values nobody set are worked out again: a new method brings its own usual learning rate,
        unless the user set one; a preset's method-dependent values go with the preset's method.
        """
        data = self.model_dump(mode="json")
        for path, value in changes.items():
            node, keys = data, path.split(".")
            for key in keys[:-1]:
                if not isinstance(node.get(key), dict):
                    if key not in node:
                        raise ConfigError([(path, f"no such field {key!r}")])
                    raise ConfigError([(path, f"{key!r} is a value, not a section")])
                node = node[key]
            node[keys[-1]] = value
        kept = {p: o for p, o in self._origins.items() if o in ("user", "preset")}
        # a value changed without a trace (built directly, or assigned): the user's, so it is kept
        plain = RunConfig.from_dict({s: {"name": getattr(self, s).name} for s in ("method", "task")}
                                    | {"data": {"source": self.data.source}})
        usual = _leaves(plain.to_dict())
        for path, value in _leaves(self.to_dict()).items():
            if path not in self._origins and not _is_set(self._origins, path) and usual.get(path, object()) != value:
                kept[path] = "user"
        for section in ("method", "task"):
            old, new = getattr(self, section).name, changes.get(f"{section}.name", getattr(self, section).name)
            if new != old:  # the old entry's options go with it
                kept = {p: o for p, o in kept.items() if not p.startswith(f"{section}.{old}.") and p != f"{section}.{old}"}
                if section == "method":
                    dependent = method_dependent()
                    kept = {p: o for p, o in kept.items() if not (o == "preset" and p in dependent)}
        for path in changes:
            kept = {p: o for p, o in kept.items() if not (p == path or p.startswith(path + "."))}
        values: dict = {}
        for path in kept:
            value = self.get(path)
            _put(values, path, value.model_dump(mode="json") if isinstance(value, Section) else copy.deepcopy(value))
        for path, value in changes.items():
            _put(values, path, value)
            kept[path] = "user"
        return RunConfig.from_dict(values, origins=kept)

    def get(self, path: str) -> Any:
        node: Any = self
        for key in path.split("."):
            node = node[key] if isinstance(node, dict) else getattr(node, key)
        return node

    @classmethod
    def preset(cls, name: str) -> "RunConfig":
        path = PRESETS_DIR / f"{name}.yaml"
        if not path.is_file():
            known = ", ".join(list_presets())
            raise ConfigError([("preset", f"unknown preset {name!r}; known: {known}")])
        return cls.from_yaml(path, origin="preset")

    @classmethod
    def load(cls, source: Union["RunConfig", dict, str, os.PathLike]) -> "RunConfig":
        """A config from whatever names one: a RunConfig, a dict, a .yaml/.json file or a preset name."""
        if isinstance(source, RunConfig):
            return source
        if isinstance(source, dict):
            return cls.from_dict(source)
        text = str(source)
        if text.endswith((".yaml", ".yml")):
            return cls.from_yaml(text)
        if text.endswith(".json"):
            return cls.from_json(text)
        return cls.preset(text)


def list_presets(folder: Union[str, os.PathLike, None] = None) -> dict[str, str]:
    """Preset name -> its one-line description (the file's first comment), from ``folder`` (ftkit's presets)."""
    out = {}
    for path in sorted(Path(folder or PRESETS_DIR).glob("*.yaml")):
        first = path.read_text().splitlines()[0]
        out[path.stem] = first.lstrip("# ").strip() if first.startswith("#") else ""
    return out


def _read(path: Union[str, os.PathLike]) -> str:
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError([("", f"config file {str(path)!r} does not exist")]) from None
    except OSError as exc:
        raise ConfigError([("", f"cannot read config file {str(path)!r}: {exc.strerror}")]) from None
