"""Export a trained run: its adapter, a merged model, or an ONNX graph, each checked before it is reported.

Every export is loaded back from the files it wrote and run on rows of the
run's own data; its outputs are compared with the trained model's, so a bad
merge or a wrong ONNX graph fails here, with the figure, not in deployment.
Heavy libraries are imported inside the functions that use them.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from .errors import ConfigError
from .export_samples import (INPUTS, MAX_SAMPLE_TOKENS, OUTPUTS, SAMPLE_ROWS, Samples,  # noqa: F401
                             max_abs_diff, outputs, sample_inputs)

FORMATS = ("adapter", "merged", "onnx")
#: how a 4/8-bit run's float base is made before merging
QUANTIZED_BASES = ("dequantized", "original")
#: max |difference| allowed between float32 outputs of the same weights computed two ways
TOLERANCE = 1e-4
MANIFEST = "export.json"
RUN_CONFIG = "ftkit_config.yaml"
ONNX_FILE = "model.onnx"


class ExportError(RuntimeError):
    """An export that was written but failed its check (outputs differ beyond the tolerance)."""


@dataclass
class Check:
    """Outputs of the exported model against a reference, on the same inputs."""

    what: str  # "merged model vs adapter model", "ONNX Runtime vs PyTorch"
    max_abs_diff: float
    tolerance: Optional[float]  # None: measured and reported, not enforced (the note says why)
    inputs: str  # which rows, which shape

    @property
    def passed(self) -> bool:
        return self.tolerance is None or self.max_abs_diff <= self.tolerance

    def text(self) -> str:
        limit = f"tolerance {self.tolerance:.0e}: {'ok' if self.passed else 'OVER'}" if self.tolerance else "reported only"
        return f"{self.what}: max |diff| {self.max_abs_diff:.3g} on {self.inputs}; {limit}"


@dataclass
class ExportResult:
    run_id: str
    format: str
    out: Path
    files: list[str] = field(default_factory=list)  # names inside ``out``
    notes: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)

    @property
    def parity(self) -> Optional[Check]:
        """The check of the files written (for onnx: ONNX Runtime against PyTorch)."""
        return self.checks[-1] if self.checks else None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["out"] = str(self.out)
        for check, raw in zip(self.checks, data["checks"]):
            raw["passed"] = check.passed
        return data

    def text(self) -> str:
        lines = [f"exported run {self.run_id} as {self.format} to {self.out}", f"  files: {', '.join(self.files)}"]
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  check: {c.text()}" for c in self.checks]
        return "\n".join(lines)


# ---- what may be exported -----------------------------------------------------


def run_path(run: Any, runs_dir: Optional[str] = None) -> Path:
    """The folder of a run given as a Run, a RunRecord, a folder, or an id (or any unique part of one)."""
    from .store import run_path as resolve

    return resolve(run, runs_dir)  # KeyError names the missing run


def refusal(config, format: str) -> Optional[str]:
    """Why this run cannot be exported in ``format``, with what to do instead; None when it can."""
    spec = config.method_spec
    if format == "adapter" and spec.kind == "full":
        return (f"{spec.title} ({spec.name}) saved the whole model, not an adapter; "
                "use format merged (or onnx) to export it")
    if format in ("merged", "onnx") and not spec.mergeable:
        if spec.kind == "prompt":
            why = "its learned prompts live outside the model's weights, so there is nothing to merge into them"
        else:
            note = spec.trades.note
            why = note.removeprefix("cannot be merged: ") if "merge" in note else "peft has no merge for it"
        return (f"{spec.title} ({spec.name}) cannot be merged into the base weights: {why}. "
                "Use format adapter and load it on the base model with peft (PeftModel.from_pretrained)")
    return None


def _check_args(format: str, quantized_base: str, tolerance: float) -> None:
    if format not in FORMATS:
        raise ConfigError([("format", f"must be one of {', '.join(FORMATS)}, got {format!r}")])
    if quantized_base not in QUANTIZED_BASES:
        raise ConfigError([("quantized_base", f"must be one of {', '.join(QUANTIZED_BASES)}, got {quantized_base!r}")])
    if not tolerance > 0:
        raise ConfigError([("tolerance", f"must be > 0, got {tolerance!r}")])


def _check_onnx_installed() -> None:
    from importlib.util import find_spec

    missing = [name for name in ("onnx", "onnxscript", "onnxruntime") if find_spec(name) is None]
    if missing:
        raise ConfigError([("format", f"onnx export needs {', '.join(missing)}: pip install 'ftkit[onnx]'")])


def _prepare_out(out: Path) -> None:
    """An empty folder, or one holding an earlier export (whose files are replaced); never someone's other files."""
    if out.exists() and not out.is_dir():
        raise ConfigError([("out", f"{out} is a file; give a folder")])
    if out.is_dir() and any(out.iterdir()):
        manifest = out / MANIFEST
        if not manifest.is_file():
            raise ConfigError([("out", f"{out} is not empty and holds no earlier export; give a new or empty folder")])
        for name in json.loads(manifest.read_text()).get("files", []) + [MANIFEST]:
            target = out / name
            if target.is_file() and target.parent == out:
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def _labels(model) -> Optional[list[str]]:
    id2label = getattr(model.config, "id2label", None) or {}
    return [id2label[i] for i in range(len(id2label))] or None


def _float_base(config, labels, quantized_base: str, notes: list[str]):
    """The unquantized float32 base a 4/8-bit run's adapter is merged onto."""
    import torch

    from .engine.loading import load_model

    bits = config.bits
    if quantized_base == "dequantized":
        base = load_model(config, labels).dequantize(dtype=torch.float32)
        notes.append(f"merged onto the {bits}-bit base dequantized to float32: the same base weights the adapter "
                     f"was trained against, stored in float32 ({32 // bits}x their quantized size)")
        if bits == 8:
            notes.append("8-bit layers also round their inputs to 8 bits at run time; the float32 merge does not, "
                         "so its outputs differ slightly from the trained model's (the difference below)")
    else:
        # the same base loaded without bitsandbytes: the weights before 4/8-bit rounding
        base = load_model(config.update({"model.dtype": "float32"}), labels, quantized=False)
        notes.append(f"merged onto the original full-precision base; the adapter was trained against its {bits}-bit "
                     "rounding, which this merge does not reproduce (the difference below)")
    return base.to(torch.float32)


def merged_model(model, config, run_dir: Path, quantized_base: str, notes: list[str]):
    """The trained model with its adapter folded into the weights (full fine-tuning: the model as it is)."""
    if config.method_spec.kind == "full":
        notes.append(f"{config.method_spec.title} trained the whole model: written as it is")
        return model
    if config.bits:
        from .engine.loading import load_adapter

        base = _float_base(config, _labels(model), quantized_base, notes)
        model = load_adapter(base, run_dir / "final")
    return model.merge_and_unload()


def segments_ignored(model, samples: Samples, kind: str, reference: dict) -> bool:
    """True when the trained model's outputs do not depend on token_type_ids it was given.

    peft's question-answering wrapper does not pass them on (peft 0.21), so such
    a run trained and evaluated as if every token were in segment 0.
    """
    given = samples.check.get("token_type_ids")
    if given is None or not bool(given.any()):
        return False
    without = {k: v for k, v in samples.check.items() if k != "token_type_ids"}
    return max_abs_diff(outputs(model, without, kind), reference, samples.mask) == 0.0


def share_segment_zero(merged, samples: Samples, notes: list[str]) -> None:
    """Make the merged model ignore token_type_ids the way the trained one did."""
    import torch

    table = next((m for n, m in merged.named_modules()
                  if n.endswith("token_type_embeddings") and isinstance(m, torch.nn.Embedding)), None)
    why = "the trained model never used token_type_ids (peft's question-answering wrapper drops them)"
    if table is None:
        for batch in (samples.check, samples.export):
            batch.pop("token_type_ids", None)
        notes.append(f"{why}: feed the export no token_type_ids")
        return
    with torch.no_grad():
        table.weight[1:] = table.weight[0]
    notes.append(f"{why}, so every segment now shares segment 0's embedding: the export gives the trained "
                 "model's outputs whether or not token_type_ids are passed")


def _merge_tolerance(config, merged, quantized_base: str, tolerance: float, notes: list[str]) -> Optional[float]:
    """The tolerance the merge is held to; None where it cannot reproduce the trained model bit for bit."""
    import torch

    if config.bits == 8 or (config.bits and quantized_base == "original"):
        return None
    if merged.dtype != torch.float32:
        notes.append(f"{str(merged.dtype).replace('torch.', '')} weights: the merge's rounding differs from the "
                     "adapter's, so the difference is reported, not checked")
        return None
    return tolerance


# ---- writers ----------------------------------------------------------------------


def _auto_class(kind: str):
    import transformers

    from .engine.loading import AUTO_CLASSES

    return getattr(transformers, AUTO_CLASSES[kind])


def _write_adapter(model, tokenizer, config, out, samples, reference, tolerance, result) -> None:
    from .engine.loading import load_adapter, load_model

    kind = config.task_spec.model_kind
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    result.notes.append(f"load with peft: PeftModel.from_pretrained(<{config.model_name} with its "
                        f"{kind} head>, '{out}')")
    base = load_model(config, _labels(model))
    reloaded = load_adapter(base, out).eval()
    got = outputs(reloaded, samples.check, kind)
    result.checks.append(Check("reloaded adapter vs trained model", max_abs_diff(got, reference, samples.mask),
                               tolerance, samples.text))


def _write_merged(merged, tokenizer, config, out, samples, reference, tolerance, result) -> None:
    kind = config.task_spec.model_kind
    merged.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    result.notes.append(f"load with transformers: {_auto_class(kind).__name__}.from_pretrained('{out}')")
    reloaded = _auto_class(kind).from_pretrained(str(out), dtype=merged.dtype).eval()
    got = outputs(reloaded, samples.check, kind)
    result.checks.append(Check("merged model (reloaded) vs trained model", max_abs_diff(got, reference, samples.mask),
                               tolerance, samples.text))


def _graph_module(model, kind: str):
    """The module ``torch.onnx.export`` traces: named tensors in, the head's outputs out as a tuple."""
    import torch

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask=None, token_type_ids=None, decoder_input_ids=None):
            given = dict(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                         decoder_input_ids=decoder_input_ids)
            kwargs = {k: v for k, v in given.items() if v is not None}
            if kind in ("causal_lm", "seq2seq"):
                kwargs["use_cache"] = False
            out = self.model(**kwargs)
            return tuple(getattr(out, name) for name in OUTPUTS[kind])

    return Head().eval()


def _write_onnx(merged, tokenizer, config, out, samples, tolerance, result) -> None:
    import logging
    import warnings

    import numpy as np
    import onnxruntime
    import torch

    kind = config.task_spec.model_kind
    merged = merged.to("cpu", torch.float32).eval()
    if kind == "causal_lm":
        merged.config.use_cache = False
    graph = _graph_module(merged, kind)
    names = list(samples.export)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    dims = {n: {0: batch, 1: torch.export.Dim("decoder_sequence") if n == "decoder_input_ids" else seq} for n in names}
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)  # optional-op notices (torchvision) are noise here
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (), str(out / ONNX_FILE), kwargs=dict(samples.export), input_names=names,
                          output_names=list(OUTPUTS[kind]), dynamic_shapes=dims, dynamo=True, verbose=False)
    merged.config.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    if kind in ("causal_lm", "seq2seq"):
        result.notes.append("the graph has no KV cache: each call scores the whole sequence (fine for scoring; "
                            "generation recomputes the prefix at every token)")
    result.notes.append("float32 graph; run it with onnxruntime.InferenceSession(path, "
                        "providers=['CPUExecutionProvider']) on the tokenizer's outputs")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(out / ONNX_FILE), options, providers=["CPUExecutionProvider"])
    feed = {n: samples.check[n].cpu().numpy().astype(np.int64) for n in names}
    got = dict(zip(OUTPUTS[kind], session.run(list(OUTPUTS[kind]), feed)))
    reference = outputs(merged, samples.check, kind)
    result.checks.append(Check("ONNX Runtime (CPU) vs PyTorch", max_abs_diff(got, reference, samples.mask),
                               tolerance, samples.text))


# ---- the one entry point ---------------------------------------------------------


def export(run: Any, format: str, out: Union[str, Path, None] = None, *, runs_dir: Optional[str] = None,
           tolerance: float = TOLERANCE, quantized_base: str = "dequantized",
           rows: int = SAMPLE_ROWS) -> ExportResult:
    """Write a run's ``adapter``, ``merged`` model or ``onnx`` graph to ``out`` (default ``<run>/export/<format>``).

    ``run`` is a Run, a RunRecord, a run folder or a run id. A 4/8-bit run is
    merged onto its base dequantized to float32 (``quantized_base="original"``:
    onto the base loaded unquantized instead). Raises ConfigError for what
    cannot be exported, ExportError when the written files fail their check.
    """
    from .config import RunConfig
    from .engine.build import quiet
    from .engine.loading import load_trained

    _check_args(format, quantized_base, tolerance)
    path = run_path(run, runs_dir)
    config = RunConfig.from_json(path / "config.json")
    reason = refusal(config, format)
    if reason:
        raise ConfigError([("format", reason)])
    if format == "onnx":
        _check_onnx_installed()
    if not (path / "final").is_dir():
        raise ConfigError([("run", f"{path.name} has no trained weights (no final/ folder): "
                                   "export a run that finished or was stopped")])
    out = Path(out) if out is not None else path / "export" / format
    _prepare_out(out)
    quiet()
    model, tokenizer, config = load_trained(path)
    samples = sample_inputs(config, tokenizer, model, rows)
    kind = config.task_spec.model_kind
    reference = outputs(model, samples.check, kind)
    result = ExportResult(path.name, format, out)
    if format == "adapter":
        _write_adapter(model, tokenizer, config, out, samples, reference, tolerance, result)
    else:
        ignored = segments_ignored(model, samples, kind, reference)
        merged = merged_model(model, config, path, quantized_base, result.notes)
        del model
        if ignored:
            share_segment_zero(merged, samples, result.notes)
        limit = _merge_tolerance(config, merged, quantized_base, tolerance, result.notes)
        if format == "merged":
            _write_merged(merged, tokenizer, config, out, samples, reference, limit, result)
        else:
            result.checks.append(Check("merged model vs trained model",
                                       max_abs_diff(outputs(merged, samples.check, kind), reference, samples.mask),
                                       limit, samples.text))
            _write_onnx(merged, tokenizer, config, out, samples, tolerance, result)
    config.to_yaml(out / RUN_CONFIG)
    result.files = sorted(p.name for p in out.iterdir() if p.is_file() and p.name != MANIFEST)
    (out / MANIFEST).write_text(json.dumps(result.to_dict(), indent=2))
    failed = [c for c in result.checks if not c.passed]
    if failed:
        raise ExportError(f"export of {path.name} as {format} failed its check: {failed[0].text()}. "
                          f"The files are in {out} for inspection")
    return result
