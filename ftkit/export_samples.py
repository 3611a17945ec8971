"""Inputs built from a run's own rows, and the outputs every export check compares."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

SAMPLE_ROWS = 8
MAX_SAMPLE_TOKENS = 128
#: what each model head returns, in the order the ONNX graph outputs it
OUTPUTS = {
    "causal_lm": ("logits",),
    "seq2seq": ("logits",),
    "seq_cls": ("logits",),
    "token_cls": ("logits",),
    "qa": ("start_logits", "end_logits"),
}
INPUTS = ("input_ids", "attention_mask", "token_type_ids", "decoder_input_ids")


# ---- sample inputs from the run's own data ------------------------------------------


@dataclass
class Samples:
    export: dict  # a small batch the ONNX graph is traced with
    check: dict  # a larger, differently shaped batch every check runs on
    mask: Any  # bool [batch, seq] of positions whose outputs are compared; None: compare everything
    text: str


def sample_inputs(config, tokenizer, model, rows: int = SAMPLE_ROWS) -> Samples:
    """Model inputs built by the task's own preprocessing from the first eval rows."""
    from .data import load_rows
    from .tasks import TaskContext

    train_rows, eval_rows = load_rows(config)
    picked = (eval_rows or train_rows)[:rows]
    max_length = min(config.training.max_seq_length, MAX_SAMPLE_TOKENS)
    data = config.task_spec.prepare(TaskContext(tokenizer, config.task_options, max_length, picked, picked,
                                                model_config=model.config, seed=config.training.seed))
    features = [data.eval[i] for i in range(min(rows, len(data.eval)))]
    if data.collator is None:
        from transformers import default_data_collator as collate
    else:
        collate = data.collator
    kind = config.task_spec.model_kind
    check_batch = collate(features)
    check, export = _inputs(check_batch, kind, model), _inputs(collate(features[:2]), kind, model)
    if kind == "seq_cls":
        mask = None
    elif kind == "seq2seq":
        mask = check_batch["labels"] != -100
    else:
        mask = check["attention_mask"].bool()
    shape = " x ".join(str(n) for n in check["input_ids"].shape)
    return Samples(export, check, mask, f"{len(features)} eval rows of the run's data ({shape} tokens)")


def _inputs(batch: dict, kind: str, model) -> dict:
    inputs = {k: batch[k] for k in INPUTS if k in batch}
    if kind == "seq2seq":
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        inputs["decoder_input_ids"] = base.prepare_decoder_input_ids_from_labels(labels=batch["labels"])
    return inputs


def outputs(model, inputs: dict, kind: str) -> dict:
    """The head's outputs as float32 CPU tensors."""
    import torch

    device = next(model.parameters()).device
    extra = {"use_cache": False} if kind in ("causal_lm", "seq2seq") else {}
    with torch.no_grad():
        out = model(**{k: v.to(device) for k, v in inputs.items()}, **extra)
    found = {name: getattr(out, name).detach().float().cpu() for name in OUTPUTS[kind]}
    length = inputs["input_ids"].shape[1]
    if kind in ("causal_lm", "token_cls", "qa"):
        # prompt tuning prepends virtual tokens: keep the positions of the real ones
        found = {name: value[:, -length:] for name, value in found.items()}
    return found


def max_abs_diff(a: dict, b: dict, mask=None) -> float:
    """Largest |a - b| over every output, at the compared positions; NaN counts as infinite."""
    import torch

    worst = 0.0
    for name in a:
        diff = (torch.as_tensor(a[name]).float() - torch.as_tensor(b[name]).float()).abs()
        if mask is not None and diff.dim() >= 2:
            diff = diff[mask]
        diff = torch.nan_to_num(diff, nan=float("inf"))
        worst = max(worst, float(diff.max()) if diff.numel() else 0.0)
    return worst


# ---- the model to write ----------------------------------------------------------
