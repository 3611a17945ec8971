"""Predictions from a trained run, or from the base model it started from.

``Predictor(run)`` reads the run's config; the model loads on the first
``predict`` and stays in a small cache (keyed by the weights' folder), so
later calls, ``Run.predict`` and several playgrounds on the same runs load it
once. Input is formatted exactly as the run's task did in training (chat
template and system prompt, translation source prefix, NER words, QA
question/context windows), with the task modules' own functions.

What ``predict(text, **options)`` returns, by the task's model head:

- causal LM (domain, chat, creative) and translation: ``Generation(text)``;
  options ``max_new_tokens``, ``temperature`` (0 decodes greedily),
  ``top_p``, ``seed`` (same seed, same sample), and ``num_beams`` for
  translation. Chat also takes a whole conversation: a list of
  ``{"role", "content"}`` messages.
- classification: ``Classification(label, probabilities)``.
- NER: ``Entities([Entity(text, label, start, end, score)])``; ``start`` and
  ``end`` are character offsets into the input (``text[start:end]``).
- QA: ``Answer(answer, start, end, score)``, offsets into the context. The
  input is a question and a context: ``predict(question, context=...)``,
  ``predict({"question": ..., "context": ...})`` or one string
  ``"question ||| context"``.

Importing this module loads no torch; loading a model does.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .predict_heads import (QA_SEPARATOR, _answer, _check_option, _classify, _entities, _qa_input,  # noqa: F401
                            _text, _translate, split_words)
from .predict_results import Answer, Classification, Entities, Entity, Generation, PredictError  # noqa: F401

#: Models kept loaded at once; the oldest is dropped first.
CACHE_SIZE = 4
KINDS = {"causal_lm": "generation", "seq2seq": "generation", "seq_cls": "classification",
         "token_cls": "ner", "qa": "qa"}
GENERATION_OPTIONS = ("max_new_tokens", "temperature", "top_p", "seed")

@dataclass
class _Loaded:
    model: Any
    tokenizer: Any
    lock: threading.Lock = field(default_factory=threading.Lock)


_cache: "OrderedDict[tuple, _Loaded]" = OrderedDict()
_cache_lock = threading.Lock()


def clear_cache() -> None:
    """Drop every loaded model (to free memory; the next prediction loads again)."""
    with _cache_lock:
        _cache.clear()


def _cached(key: tuple, load) -> _Loaded:
    with _cache_lock:  # one load at a time: two threads asking for one model load it once
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
        model, tokenizer = load()
        _cache[key] = _Loaded(model, tokenizer)
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
        return _cache[key]


def _ready(model, config):
    """Evaluation mode, on the GPU when there is one (a quantized model is placed already)."""
    from .engine.loading import device_type

    model.eval()
    if device_type() == "cuda" and not config.bits and next(model.parameters()).device.type == "cpu":
        model.to("cuda")
    return model


def run_path(run: Any, runs_dir: Optional[str] = None) -> Path:
    """The folder of ``run`` (``store.run_path``), a missing run as a PredictError."""
    from . import store

    try:
        return store.run_path(run, runs_dir)
    except KeyError as exc:
        raise PredictError(f"{exc.args[0]} (`ftkit runs` lists the runs)") from None


# ---- the predictor ---------------------------------------------------------------------------


class Predictor:
    """Predictions of one run's trained model (``Predictor(run)``) or of a base model (``Predictor.base(config)``)."""

    def __init__(self, run: Any, *, runs_dir: Optional[str] = None, checkpoint: Optional[str] = None):
        from .config import RunConfig

        self.path = run_path(run, runs_dir)
        self.config = RunConfig.from_json(self.path / "config.json")
        self.checkpoint = checkpoint
        self.name = self.path.name
        self.is_base = False

    @classmethod
    def base(cls, config: Any) -> "Predictor":
        """The untuned base model of ``config`` (a ``RunConfig``, or a run whose config to use)."""
        if not hasattr(config, "task_spec"):
            config = Predictor(config).config
        self = cls.__new__(cls)
        self.path, self.config, self.checkpoint, self.is_base = None, config, None, True
        self.name = f"base {config.model_name}"
        return self

    # ---- what it is --------------------------------------------------------------------------

    @property
    def task(self) -> str:
        return self.config.task.name

    @property
    def kind(self) -> str:
        """generation, classification, ner or qa."""
        return KINDS[self.config.task_spec.model_kind]

    @property
    def method(self) -> str:
        return "base" if self.is_base else self.config.method.name

    def defaults(self) -> dict:
        """The options ``predict`` takes, with the values it uses when they are not given."""
        if self.kind != "generation":
            return {}
        opts = self.config.task_options
        out = {"max_new_tokens": opts.max_new_tokens, "temperature": float(getattr(opts, "temperature", 0.0)),
               "top_p": float(getattr(opts, "top_p", 1.0)), "seed": self.config.training.seed}
        if self.config.task_spec.model_kind == "seq2seq":
            out["num_beams"] = opts.num_beams
        return out

    def __repr__(self) -> str:
        return f"<Predictor {self.name} ({self.task})>"

    # ---- loading -----------------------------------------------------------------------------

    def _weights(self) -> Path:
        weights = Path(self.checkpoint) if self.checkpoint else self.path / "final"
        if not (weights / "config.json").is_file() and not (weights / "adapter_config.json").is_file():
            from .store import RunRecord

            record = RunRecord(self.path)
            found = record.checkpoints()
            hint = f" ({found[-1]} is its last complete one)" if found else " (it saved none)"
            raise PredictError(
                f"run {self.name} has no saved model in {weights} (status: {record.status}); "
                "predict once it has ended, or predict from a saved checkpoint: "
                f"`ftkit predict {self.name} TEXT --checkpoint DIR` (Python: checkpoint=DIR){hint}"
            )
        return weights

    def _loaded(self) -> _Loaded:
        from .engine.build import quiet

        config = self.config
        if self.is_base:
            key = ("base", config.model_name, config.model.revision, config.task.model_dump_json(),
                   config.quantization.model_dump_json(), config.bits)

            def load():
                import torch

                from .data import load_rows
                from .engine.loading import load_model, load_tokenizer

                quiet()
                labels = config.task_spec.label_names(load_rows(config)[0], config.task_options)
                with torch.random.fork_rng():  # a new head starts as the run's did: seeded the same way
                    torch.manual_seed(config.training.seed)
                    model = load_model(config, labels)
                return _ready(model, config), load_tokenizer(config)
        else:
            weights = self._weights()
            key = ("run", str(weights.resolve()), weights.stat().st_mtime_ns)

            def load():
                from .engine.loading import load_trained

                quiet()
                model, tokenizer, _ = load_trained(self.path, self.checkpoint)
                return _ready(model, config), tokenizer
        return _cached(key, load)

    def load(self) -> "Predictor":
        """Load the model now (else the first ``predict`` does); returns self."""
        self._loaded()
        return self

    # ---- predicting --------------------------------------------------------------------------

    def predict(self, text: Any, **options: Any):
        """The model's output for ``text``: a ``Generation``, ``Classification``, ``Entities`` or ``Answer``."""
        kind = self.kind
        context = options.pop("context", None) if kind == "qa" else None
        opts = self._options(options)
        if kind == "qa":
            question, context = _qa_input(text, context)
        elif self.config.task_spec.prompt is None:  # a task with its own prompt takes its own input forms
            text = _text(text, kind)
        loaded = self._loaded()
        import torch

        with loaded.lock, torch.inference_mode():
            if kind == "generation":
                return self._generate(loaded, text, opts)
            if kind == "classification":
                return _classify(loaded, text)
            if kind == "ner":
                return _entities(loaded, text)
            return _answer(loaded, question, context, self.config)

    def _options(self, given: dict) -> dict:
        defaults = self.defaults()
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            takes = ", ".join(defaults) or ("only context" if self.kind == "qa" else "no options")
            raise PredictError(f"{unknown[0]}: not an option for a {self.task} run (it takes {takes})")
        out = dict(defaults)
        for name, value in given.items():
            if value is not None:
                out[name] = _check_option(name, value)
        return out

    def _generate(self, loaded: _Loaded, text: Any, opts: dict) -> Generation:
        from types import SimpleNamespace

        from .tasks._causal import generate_text, prompt_ids

        model, tok = loaded.model, loaded.tokenizer
        settings = SimpleNamespace(**opts)
        if self.config.task_spec.model_kind == "seq2seq":
            return Generation(_translate(model, tok, text, settings, self.config))
        if self.config.task_spec.prompt is not None:
            try:
                ids = self.config.task_spec.prompt(tok, text, self.config.task_options)
            except ValueError as exc:  # the task's own words for input it cannot take
                raise PredictError(f"text: {exc}") from None
        else:
            ids = prompt_ids(tok, text)
        return Generation(generate_text(model, tok, ids, settings, opts["seed"]))
