"""Loading the tokenizer and the base model for a config: dtype, quantization, task head."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from .. import models
from ..errors import ConfigError
from ..shapes.parts import HEAD_NAMES

AUTO_CLASSES = {
    "causal_lm": "AutoModelForCausalLM",
    "seq2seq": "AutoModelForSeq2SeqLM",
    "seq_cls": "AutoModelForSequenceClassification",
    "token_cls": "AutoModelForTokenClassification",
    "qa": "AutoModelForQuestionAnswering",
}


def device_type() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _dtype(name: str):
    import torch

    if name == "auto":
        if device_type() == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return getattr(torch, name)


def _source(config) -> str:
    """The loadable id or folder; a missing local path is a config error, not a traceback."""
    try:
        return models.resolve(config.model_name)
    except ValueError as exc:
        raise ConfigError([("model.name_or_path", str(exc))]) from None


def load_tokenizer(config):
    from transformers import AutoTokenizer

    source = _source(config)
    try:
        tok = AutoTokenizer.from_pretrained(
            source, revision=config.model.revision, trust_remote_code=config.model.trust_remote_code
        )
    except OSError as exc:
        raise ConfigError([("model.name_or_path", f"cannot load a tokenizer from {config.model_name!r}: {exc}")]) from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token or tok.unk_token
    return tok


def quantization_config(config, model_kind: str):
    bits = config.bits
    if not bits:
        return None
    from transformers import BitsAndBytesConfig

    q = config.quantization
    compute = _dtype(q.compute_dtype)
    # task heads stay in full precision: bitsandbytes cannot train a quantized head
    skip = [h for h in HEAD_NAMES if h != "lm_head"] + ["pre_classifier", "lm_head"]
    if bits == 4:
        return BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=q.quant_type, bnb_4bit_use_double_quant=q.double_quant,
            bnb_4bit_compute_dtype=compute, llm_int8_skip_modules=skip,
        )
    return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)


def load_model(config, labels: Optional[list[str]] = None, local_rank: int = 0, quantized: bool = True):
    """The base model of ``config`` with its task head; ``quantized=False``: without the run's 4/8-bit rounding."""
    import transformers

    kind = config.task_spec.model_kind
    auto = getattr(transformers, AUTO_CLASSES[kind])
    kwargs: dict = dict(
        revision=config.model.revision,
        trust_remote_code=config.model.trust_remote_code,
        dtype=_dtype(config.model.dtype),
    )
    if config.model.attn_implementation:
        kwargs["attn_implementation"] = config.model.attn_implementation
    if labels is not None and kind in ("seq_cls", "token_cls"):
        kwargs.update(
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={name: i for i, name in enumerate(labels)},
        )
    quant = quantization_config(config, kind) if quantized else None
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": local_rank if device_type() == "cuda" else "cpu"}
    source = _source(config)
    try:
        model = auto.from_pretrained(source, **kwargs)
    except OSError as exc:
        raise ConfigError([("model.name_or_path", f"cannot load {config.model_name!r}: {exc}")]) from None
    except ValueError as exc:
        if "Unrecognized configuration class" in str(exc):
            raise ConfigError([(
                "task.name",
                f"{config.model_name!r} has no {kind} head for task {config.task.name!r}; choose a model built for it",
            )]) from None
        raise
    if getattr(model.config, "pad_token_id", None) is None and kind == "seq_cls":
        model.config.pad_token_id = model.config.eos_token_id
    if quant is not None and device_type() == "cpu":
        differentiable_4bit(model)
    return model


def differentiable_4bit(model):
    """Keep bitsandbytes' differentiable 4-bit path on CPUs with AVX512-BF16 (Sapphire Rapids and later).

    There, bitsandbytes 0.50 repacks a ``Linear4bit`` weight for its fused CPU kernel the first time the
    layer runs in eval mode without gradients (an evaluation, a loss measured under ``no_grad``), and runs
    every later forward through that kernel, in training too. The kernel has no backward, so nothing flows
    back through the frozen base any more (adapters below it stop learning, silently), and it refuses layers
    whose output size is not a multiple of 32. A model ftkit loads trains, evaluates and trains again.
    """
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False
    return model


def trained_labels(run_path, config):
    """The label names the run's head was trained with: kept in its folder; older runs re-read their data."""
    from ..records import LABELS_FILE, read_json

    saved = read_json(Path(run_path) / LABELS_FILE)
    if isinstance(saved, dict) and "labels" in saved:
        return saved["labels"]
    from ..data.rows import load_rows

    return config.task_spec.label_names(load_rows(config)[0], config.task_options)


def load_trained(run_path, checkpoint: Optional[str] = None):
    """(model, tokenizer, config) of a finished run: base model plus its saved adapter.

    Full fine-tuning runs saved the whole model, which loads on its own.
    """
    from ..config import RunConfig

    run_path = Path(run_path)
    config = RunConfig.from_json(run_path / "config.json")
    weights = Path(checkpoint) if checkpoint else run_path / "final"
    labels = trained_labels(run_path, config)
    tokenizer = load_tokenizer(config)
    if config.method_spec.kind == "full":
        model = load_model(config.set("model.name_or_path", str(weights)), labels)
    else:
        model = load_adapter(load_model(config, labels), weights)
    model.eval()
    return model, tokenizer, config


def load_adapter(base, folder):
    """``base`` with the peft adapter saved in ``folder`` (``PeftModel.from_pretrained``), the process's
    compiler variables kept (``ftkit.compiler_env``)."""
    from peft import PeftModel

    from ..compiler_env import compiler_env_kept

    with compiler_env_kept():
        return PeftModel.from_pretrained(base, str(folder))
