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
from typing import Any, Optional, Union

import yaml
from pydantic import PrivateAttr, ValidationError, model_validator

from .config_files import PRESETS_DIR, _read, _UniqueKeyLoader, list_presets  # noqa: F401  (public here too)
from .config_layers import (ORIGINS, _apply_layers, _is_set, _leaves, _put, _unselected,  # noqa: F401
                            builtin_only, method_dependent)
from .config_sections import (DataSection, DistributedSection, MethodSection, ModelSection,  # noqa: F401
                              QuantizationSection, SlurmSection, TaskSection, TrainingSection, WhatIfSection)
from .errors import ConfigError, from_validation
from .methods import methods
from .schema import Section, field
from .tasks import tasks


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
