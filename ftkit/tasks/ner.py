"""Named-entity recognition: a BIO tag per word; entity-level precision, recall and F1 (seqeval).

Words are split into sub-tokens by the model's tokenizer; each word's tag
goes on its first sub-token and the others are ignored (-100), so the
metric is computed per word, as the data states it.
"""
from __future__ import annotations

from typing import Optional

from ._base import TaskContext, TaskData, TaskSpec
from ._text import generate, pick
from ..data import where
from ..errors import ConfigError
from ..schema import Options, field


class NerOptions(Options):
    labels: Optional[list[str]] = field(
        None, "Tag names in order (BIO: O, B-PER, I-PER, ...); empty: O, then the sorted tags found in the data."
    )


FIRST = ["Ada", "Tomas", "Mirela", "Jonas", "Priya", "Kwame", "Elena", "Hugo", "Sofia", "Ravi", "Lena", "Omar",
         "Ines", "Yuki", "Marta", "Felix", "Nadia", "Oscar", "Leila", "Bruno"]
LAST = ["Novak", "Okafor", "Lindqvist", "Moreau", "Tanaka", "Silva", "Brennan", "Kowalski", "Haddad", "Jensen",
        "Castillo", "Weber", "Mensah", "Rossi", "Petrov", "Nakamura"]
ORGS = [["Northwind", "Trading"], ["Apex", "Robotics"], ["Blue", "Harbor", "Bank"], ["Helix", "Labs"],
        ["Greenfield", "University"], ["Orion", "Airlines"], ["Silverline", "Media"], ["Cobalt", "Energy"],
        ["the", "Red", "Cross"], ["Meridian", "Hospital"], ["Summit", "Foods"], ["Vertex", "Software"]]
LOCS = [["Lisbon"], ["Nairobi"], ["Oslo"], ["Kyoto"], ["Buenos", "Aires"], ["New", "Delhi"], ["Cape", "Town"],
        ["Montreal"], ["Krakow"], ["San", "Diego"], ["Hamburg"], ["Lima"], ["Rio", "de", "Janeiro"], ["Cairo"]]
MONTHS = ["January", "March", "May", "July", "September", "November"]
TEMPLATES = [
    "{PER} works for {ORG} in {LOC} .",
    "{PER} moved to {LOC} in {MONTH} .",
    "Yesterday {PER} met {PER} at the {ORG} office .",
    "{ORG} opened a new branch in {LOC} last {MONTH} .",
    "According to {PER} , {ORG} will hire more staff .",
    "The flight from {LOC} to {LOC} was delayed .",
    "{PER} and {PER} founded {ORG} .",
    "Shares of {ORG} rose after {PER} spoke in {LOC} .",
    "In {MONTH} , {PER} visited {LOC} with a team from {ORG} .",
    "Nobody at the meeting mentioned the budget .",
    "{PER} said the weather in {LOC} was lovely .",
    "A spokesperson for {ORG} declined to comment .",
]


def _entity(rng, kind: str) -> list[str]:
    if kind == "PER":
        return [pick(rng, FIRST)] + ([pick(rng, LAST)] if rng.random() < 0.7 else [])
    if kind == "ORG":
        return list(pick(rng, ORGS))
    return list(pick(rng, LOCS))


def _sentence(rng, i) -> dict:
    tokens, tags = [], []
    for part in pick(rng, TEMPLATES).split():
        if part in ("{PER}", "{ORG}", "{LOC}"):
            kind = part[1:-1]
            words = _entity(rng, kind)
            tokens += words
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(words) - 1)
        elif part == "{MONTH}":
            tokens.append(pick(rng, MONTHS))
            tags.append("O")
        else:
            tokens.append(part)
            tags.append("O")
    return {"tokens": tokens, "tags": tags}


def builtin() -> list[dict]:
    return generate(_sentence, 1500, seed=5)


def _as_list(value, row: str, column: str) -> list[str]:
    if isinstance(value, str):  # a CSV cell: words separated by spaces
        value = value.split()
    if not isinstance(value, (list, tuple)):
        raise ConfigError([(f"data.columns.{column}", f"{row}: expected a list of strings, got {type(value).__name__}")])
    return [str(v) for v in value]


def label_names(rows: list[dict], options) -> list[str]:
    if options.labels:
        return list(options.labels)
    found = {str(t) for i, r in enumerate(rows) for t in _as_list(r["tags"], where(r, i), "tags")}
    return ["O"] + sorted(found - {"O"})


def _word_line(row, i: int, k: int) -> str:
    """The line of word ``k`` of a row: its own line in a CoNLL file, else the row's."""
    lines = getattr(row, "lines", None)
    here = where(row, i)
    if lines and " line " in here:
        return f"{here.rsplit(' line ', 1)[0]} line {lines[k]}"
    return f"{here}, word {k + 1}"


def check(rows: list[dict], options) -> list[str]:
    """One BIO tag per word, every tag known: refused with the line (CoNLL: the word's own line)."""
    known = set(options.labels) if options.labels else None
    for i, row in enumerate(rows):
        words = _as_list(row["tokens"], where(row, i), "tokens")
        tags = _as_list(row["tags"], where(row, i), "tags")
        if len(words) != len(tags):
            raise ConfigError([("data.columns.tags", (
                f"{where(row, i)}: {len(words)} tokens but {len(tags)} tags; give exactly one tag per word"
            ))])
        for k, tag in enumerate(tags):
            if tag != "O" and not (tag[:2] in ("B-", "I-") and len(tag) > 2):
                raise ConfigError([("data.columns.tags", (
                    f"{_word_line(row, i, k)}: tag {tag!r} (word {words[k]!r}) is not BIO; write O outside "
                    f"entities, B-{tag.lstrip('-') or 'TYPE'} on an entity's first word and "
                    f"I-{tag.lstrip('-') or 'TYPE'} on the next"
                ))])
            if known is not None and tag not in known:
                raise ConfigError([("task.ner.labels", (
                    f"{_word_line(row, i, k)}: tag {tag!r} is not in task.ner.labels {sorted(known)}; add it"
                ))])
    return []


def measure(tokenizer, row: dict, options, max_length: int) -> tuple[int, bool]:
    words = _as_list(row["tokens"], "", "tokens")
    return len(tokenizer(words, is_split_into_words=True)["input_ids"]), False


def scores(predictions: list[list[str]], references: list[list[str]]) -> dict:
    """Entity-level precision, recall, F1 (seqeval, exact span and type) and word accuracy."""
    from seqeval.metrics import accuracy_score, f1_score, precision_score, recall_score

    return {
        "f1": float(f1_score(references, predictions, zero_division=0)),
        "precision": float(precision_score(references, predictions, zero_division=0)),
        "recall": float(recall_score(references, predictions, zero_division=0)),
        "accuracy": float(accuracy_score(references, predictions)),
    }


def align(word_ids: list[Optional[int]], word_labels: list[int]) -> list[int]:
    """Each word's label on its first sub-token; -100 on later sub-tokens and special tokens."""
    out, previous = [], None
    for wid in word_ids:
        out.append(word_labels[wid] if wid is not None and wid != previous else -100)
        previous = wid
    return out


def prepare(ctx: TaskContext) -> TaskData:
    import numpy as np
    from datasets import Dataset
    from transformers import DataCollatorForTokenClassification

    names = label_names(ctx.train_rows, ctx.options)
    index = {name: i for i, name in enumerate(names)}
    if not getattr(ctx.tokenizer, "is_fast", False):
        raise ConfigError([("model.name_or_path", "NER needs a fast tokenizer (word ids); pick a model that has one")])

    def encode(rows):
        records = []
        for i, row in enumerate(rows):
            here = where(row, i)
            words, tags = _as_list(row["tokens"], here, "tokens"), _as_list(row["tags"], here, "tags")
            if len(words) != len(tags):
                raise ConfigError([("data.columns.tags", f"{here}: {len(words)} tokens but {len(tags)} tags")])
            unknown = sorted(set(tags) - set(index))
            if unknown:
                raise ConfigError([("task.ner.labels", f"{here}: tags {unknown} are not in {names}; add them")])
            enc = ctx.tokenizer(words, is_split_into_words=True, truncation=True, max_length=ctx.max_length)
            enc = dict(enc, labels=align(enc.word_ids(), [index[t] for t in tags]))
            records.append(enc)
        return Dataset.from_list(records)

    def compute_metrics(pred):
        preds, labels = np.asarray(pred.predictions), np.asarray(pred.label_ids)
        p_tags, l_tags = [], []
        for p_row, l_row in zip(preds, labels):
            keep = l_row != -100
            p_tags.append([names[int(p)] if 0 <= p < len(names) else "O" for p in p_row[keep]])
            l_tags.append([names[int(x)] for x in l_row[keep]])
        return scores(p_tags, l_tags)

    return TaskData(
        train=encode(ctx.train_rows),
        eval=encode(ctx.eval_rows),
        collator=DataCollatorForTokenClassification(ctx.tokenizer),
        compute_metrics=compute_metrics,
        preprocess_logits=lambda logits, labels: logits.argmax(-1),
    )


SPECS = [
    TaskSpec(
        name="ner",
        title="Named-entity recognition",
        summary="A BIO tag per word (people, places, organisations...); entity-level F1, precision, recall.",
        model_kind="token_cls",
        default_model="builtin:minilm",
        columns={"tokens": "the words of a sentence (a list)", "tags": "one BIO tag per word (a list)"},
        metric="f1",
        greater_is_better=True,
        metrics=("f1", "precision", "recall", "accuracy"),
        options=NerOptions,
        builtin=builtin,
        prepare=prepare,
        label_names=label_names,
        check=check,
        measure=measure,
        scenario="NLP tasks: text classification, NER, machine translation",
    )
]
