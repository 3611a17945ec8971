"""Input checks and one function per model head: how a loaded model's output becomes a result."""
from __future__ import annotations

import re
from typing import Any, Optional

from .predict_results import Answer, Classification, Entities, Entity, PredictError

QA_SEPARATOR = "|||"
WORD = re.compile(r"\w+(?:[-'\u2019]\w+)*|[^\w\s]")


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


def _classify(loaded: Any, text: str) -> Classification:
    model, tok = loaded.model, loaded.tokenizer
    enc = tok(text, truncation=True, max_length=_limit(model, tok), return_tensors="pt").to(_device(model))
    probs = model(**enc).logits[0].float().softmax(-1).tolist()
    names = _labels(model, len(probs))
    best = max(range(len(probs)), key=probs.__getitem__)
    return Classification(names[best], dict(zip(names, probs)))


def split_words(text: str) -> list[tuple[str, int, int]]:
    """(word, start, end) of each word and punctuation mark, as the NER data splits sentences."""
    return [(m.group(), m.start(), m.end()) for m in WORD.finditer(text)]


def _entities(loaded: Any, text: str) -> Entities:
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


def _answer(loaded: Any, question: str, context: str, config) -> Answer:
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
