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

import re
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional

QA_SEPARATOR = "|||"
#: Models kept loaded at once; the oldest is dropped first.
CACHE_SIZE = 4
KINDS = {"causal_lm": "generation", "seq2seq": "generation", "seq_cls": "classification",
         "token_cls": "ner", "qa": "qa"}
GENERATION_OPTIONS = ("max_new_tokens", "temperature", "top_p", "seed")
#: Words and punctuation marks, as the NER data splits sentences ("Lisbon ." is two words).
WORD = re.compile(r"\w+(?:[-'\u2019]\w+)*|[^\w\s]")


class PredictError(ValueError):
    """Input or options that do not fit the run's task, or a run that has nothing to predict with."""


# ---- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Generation:
    text: str
    kind: ClassVar[str] = "generation"

    def to_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Classification:
    label: str
    probabilities: dict[str, float]
    kind: ClassVar[str] = "classification"

    def to_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    def __str__(self) -> str:
        ranked = sorted(self.probabilities.items(), key=lambda kv: -kv[1])
        return "\n".join([self.label] + [f"  {name:<16} {p:7.2%}" for name, p in ranked])


@dataclass(frozen=True)
class Entity:
    text: str
    label: str
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Entities:
    entities: list[Entity] = field(default_factory=list)
    kind: ClassVar[str] = "ner"

    def to_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    def __str__(self) -> str:
        if not self.entities:
            return "(no entities)"
        return "\n".join(f"{e.label:<8} {e.text!r} [{e.start}:{e.end}] {e.score:.2f}" for e in self.entities)


@dataclass(frozen=True)
class Answer:
    answer: str
    start: int
    end: int
    score: float
    kind: ClassVar[str] = "qa"

    def to_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    def __str__(self) -> str:
        return f"{self.answer} (score {self.score:.2f}, context[{self.start}:{self.end}])"


# ---- loaded models, cached -------------------------------------------------------------------


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
        elif not (self.task == "chat" and isinstance(text, list)):
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
        if self.task == "chat":
            ids = _chat_ids(tok, text, self.config.task_options.system_prompt)
        else:
            ids = prompt_ids(tok, text)
        return Generation(generate_text(model, tok, ids, settings, opts["seed"]))


# ---- input checks ----------------------------------------------------------------------------


def _check_option(name: str, value: Any) -> Any:
    bounds = {"max_new_tokens": (int, 1, 4096), "num_beams": (int, 1, 16), "seed": (int, 0, 2**32 - 1),
              "temperature": (float, 0.0, 5.0), "top_p": (float, 1e-6, 1.0)}
    kind, low, high = bounds[name]
    try:
        number = kind(value)
        if kind is int and number != value:
            raise ValueError
    except (TypeError, ValueError):
        raise PredictError(f"{name}: expected {'an integer' if kind is int else 'a number'}, got {value!r}") from None
    if not low <= number <= high:
        raise PredictError(f"{name}: must be between {low:g} and {high:g}, got {value!r}")
    return number


def _text(text: Any, kind: str) -> str:
    what = {"generation": "the prompt", "classification": "the text to classify", "ner": "the text to tag"}[kind]
    if not isinstance(text, str):
        raise PredictError(f"text: expected a string, {what}; got {type(text).__name__}")
    if not text.strip():
        raise PredictError(f"text: empty; pass {what}")
    return text


def _qa_input(text: Any, context: Optional[str]) -> tuple[str, str]:
    """(question, context) from a dict, a question plus ``context=``, or ``"question ||| context"``."""
    how = ("pass predict(question, context=...), {'question': ..., 'context': ...} "
           f"or 'question {QA_SEPARATOR} context' (CLI: --context TEXT)")
    if isinstance(text, dict):
        unknown = sorted(set(text) - {"question", "context"})
        if unknown:
            raise PredictError(f"{unknown[0]}: not a QA input field; {how}")
        question, context = text.get("question"), text.get("context", context)
    elif isinstance(text, str) and context is None and QA_SEPARATOR in text:
        question, context = (part.strip() for part in text.split(QA_SEPARATOR, 1))
    else:
        question = text
    if not isinstance(question, str) or not question.strip():
        raise PredictError(f"question: missing or empty; {how}")
    if not isinstance(context, str) or not context.strip():
        raise PredictError(f"context: question answering finds the answer in a context, and none was given; {how}")
    return question, context


# ---- one function per task kind ----------------------------------------------------------------


def _device(model):
    return next(model.parameters()).device


def _limit(model, tokenizer) -> int:
    """Longest input the model takes, in tokens."""
    limits = [getattr(model.config, "max_position_embeddings", None), tokenizer.model_max_length]
    return min([n for n in limits if isinstance(n, int) and 0 < n < 1_000_000] or [512])


def _chat_ids(tokenizer, text: Any, system: Optional[str]) -> list[int]:
    """The conversation rendered with the chat template and the run's system prompt, as training did."""
    from .tasks.chat import ROLES, render, with_system

    if isinstance(text, str):
        messages = [{"role": "user", "content": text}]
    else:
        messages = text
        ok = bool(messages) and all(isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)
                                    for m in messages)
        if not ok:
            raise PredictError(f"text: a conversation is a list of {{role, content}} with role one of {', '.join(ROLES)}")
        messages = [{"role": m["role"], "content": m["content"]} for m in messages]
    rendered = render(tokenizer, with_system(messages, system), generation_prompt=True)
    return tokenizer(rendered, add_special_tokens=False)["input_ids"]


def _translate(model, tokenizer, text: str, opts, config) -> str:
    """The source with the run's prefix and an end token, as training encoded it, then generated."""
    import torch

    from .tasks.translation import _ended

    prefix = config.task_options.source_prefix
    ids = tokenizer(prefix + text, truncation=True, max_length=_limit(model, tokenizer) - 1)["input_ids"]
    ids = torch.tensor([_ended(tokenizer, ids)], device=_device(model))
    kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=opts.max_new_tokens,
                  num_beams=opts.num_beams)
    if opts.temperature > 0:
        kwargs.update(do_sample=True, temperature=opts.temperature, top_p=opts.top_p, top_k=0)
    else:
        kwargs.update(do_sample=False)
    device = _device(model)
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        torch.manual_seed(opts.seed)
        out = model.generate(**kwargs)
    return tokenizer.decode(out[0], skip_special_tokens=True).strip()


def _labels(model, count: int) -> list[str]:
    names = getattr(model.config, "id2label", None) or {}
    return [str(names.get(i, names.get(str(i), f"LABEL_{i}"))) for i in range(count)]


def _classify(loaded: _Loaded, text: str) -> Classification:
    model, tok = loaded.model, loaded.tokenizer
    enc = tok(text, truncation=True, max_length=_limit(model, tok), return_tensors="pt").to(_device(model))
    probs = model(**enc).logits[0].float().softmax(-1).tolist()
    names = _labels(model, len(probs))
    best = max(range(len(probs)), key=probs.__getitem__)
    return Classification(names[best], dict(zip(names, probs)))


def split_words(text: str) -> list[tuple[str, int, int]]:
    """(word, start, end) of each word and punctuation mark, as the NER data splits sentences."""
    return [(m.group(), m.start(), m.end()) for m in WORD.finditer(text)]


def _entities(loaded: _Loaded, text: str) -> Entities:
    """A tag per word from its first sub-token (as training aligned them), grouped into BIO entities."""
    model, tok = loaded.model, loaded.tokenizer
    words = split_words(text)
    if not words:
        raise PredictError("text: has no words to tag")
    enc = tok([w for w, _, _ in words], is_split_into_words=True, truncation=True,
              max_length=_limit(model, tok), return_tensors="pt")
    word_ids = enc.word_ids(0)
    probs = model(**enc.to(_device(model))).logits[0].float().softmax(-1)
    names = _labels(model, probs.shape[-1])
    tags: list[tuple[str, float]] = [("O", 1.0)] * len(words)  # words cut off by truncation stay untagged
    previous = None
    for position, wid in enumerate(word_ids):
        if wid is not None and wid != previous:
            p, index = probs[position].max(-1)
            tags[wid] = (names[int(index)], float(p))
        previous = wid
    found: list[Entity] = []
    span: Optional[list] = None  # [label, first word, last word, scores]

    def close() -> None:
        if span:
            label, first, last, scores = span
            start, end = words[first][1], words[last][2]
            found.append(Entity(text[start:end], label, start, end, sum(scores) / len(scores)))

    for i, (tag, p) in enumerate(tags):
        prefix, _, label = tag.partition("-") if "-" in tag else ("I", "", tag)
        if tag == "O" or not label:
            close()
            span = None
        elif prefix in ("I", "E") and span and span[0] == label:
            span[2] = i
            span[3].append(p)
        else:  # B-, S-, or an I- that starts a new entity
            close()
            span = [label, i, i, [p]]
    close()
    return Entities(found)


def _answer(loaded: _Loaded, question: str, context: str, config) -> Answer:
    """The best span over the context's windows, cut the way training cut them; score = P(start) P(end)."""
    import math

    import torch

    from .tasks.qa import best_spans, windows

    model, tok = loaded.model, loaded.tokenizer
    opts = config.task_options
    enc, offsets = windows(tok, [question], [context], config.training.max_seq_length, opts.stride)
    names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    batch = tok.pad({k: enc[k] for k in names}, return_tensors="pt").to(_device(model))
    out = model(**batch)
    inside = torch.zeros(out.start_logits.shape, dtype=torch.bool)
    for f, offs in enumerate(offsets):
        inside[f, : len(offs)] = torch.tensor([o is not None for o in offs])
    inside = inside.to(out.start_logits.device)
    start = out.start_logits.float().masked_fill(~inside, -1e9).log_softmax(-1).cpu().numpy()
    end = out.end_logits.float().masked_fill(~inside, -1e9).log_softmax(-1).cpu().numpy()
    best = best_spans(start, end, [0] * len(offsets), offsets, opts.n_best, opts.max_answer_tokens)
    if 0 not in best:
        return Answer("", 0, 0, 0.0)
    score, s, e = best[0]
    return Answer(context[s:e], s, e, math.exp(score))
