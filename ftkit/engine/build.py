"""The model a config trains: tokenizer, rows, labels, base model and the method applied.

Shared by training and by the notebook's model summary, so both count the
same parameters the same way.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


def quiet() -> None:
    """No progress bars or chatter from the libraries: events carry the progress."""
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()


@dataclass
class Built:
    model: Any
    tokenizer: Any
    train_rows: list
    eval_rows: list
    labels: Any
    context: Any  # methods.BuildContext
    base_params: int
    #: what the data holds beyond its rows: {"train": length_report, "eval": length_report, "warnings": [...]}
    data_report: Any = None

    def data_messages(self) -> list[str]:
        """Lines for the run's log before training: rows cut or dropped by max_seq_length, data warnings."""
        report = self.data_report or {}
        lines = [report[k]["message"] for k in ("train", "eval") if report.get(k)]
        return lines + [f"warning: {w}" for w in report.get("warnings", [])]

    def data_summary(self) -> dict:
        """Counts for the run's summary: rows, truncated, dropped, the suggested max_seq_length, per split."""
        report = self.data_report or {}
        keep = ("rows", "truncated", "dropped", "max_seq_length", "suggested_max_seq_length", "longest")
        out = {k: {f: report[k][f] for f in keep} for k in ("train", "eval") if report.get(k)}
        out["warnings"] = list(report.get("warnings", []))
        return out


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total): peft's own count for an adapter model (4-bit and ZeRO-3 weights at their real size).

    A model without an adapter (full fine-tuning, a base model before its method) is counted the same way here.
    """
    if hasattr(model, "get_nb_trainable_parameters"):
        return model.get_nb_trainable_parameters()
    trainable = total = 0
    for param in model.parameters():
        n = param.numel() or getattr(param, "ds_numel", 0)
        if param.__class__.__name__ == "Params4bit":
            n = int(math.prod(param.quant_state.shape)) if getattr(param, "quant_state", None) else n * 2
        total += n
        if param.requires_grad:
            trainable += n
    return trainable, total


def build(config, world_size: int = 1, local_rank: int = 0) -> Built:
    from ..data import length_report, load_rows
    from ..methods import BuildContext
    from .loading import load_model, load_tokenizer

    t, task = config.training, config.task_spec
    tokenizer = load_tokenizer(config)
    warnings: list[str] = []
    train_rows, eval_rows = load_rows(config, warnings)
    data_report = {"train": length_report(config, tokenizer, train_rows, "training"),
                   "eval": length_report(config, tokenizer, eval_rows, "evaluation") if eval_rows else None,
                   "warnings": warnings}
    labels = task.label_names(train_rows, config.task_options)
    model = load_model(config, labels, local_rank=local_rank)
    base_params = count_parameters(model)[1]
    per_step = t.batch_size * t.gradient_accumulation_steps * world_size
    context = BuildContext(
        model_kind=task.model_kind,
        model_type=getattr(model.config, "model_type", ""),
        quantized=bool(config.bits),
        total_steps=t.max_steps or max(1, math.ceil(len(train_rows) / per_step * t.num_epochs)),
        gradient_checkpointing=t.gradient_checkpointing,
        tokenizer=tokenizer,
        adapter_dtype=getattr(t, "adapter_dtype", "float32"),
    )
    if t.gradient_checkpointing and hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()
    model = config.method_spec.apply(model, config.method_options, context)
    return Built(model, tokenizer, train_rows, eval_rows, labels, context, base_params, data_report)
