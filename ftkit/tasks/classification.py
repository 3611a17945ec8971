"""Text classification: a label per text; accuracy and macro-F1."""
from __future__ import annotations

from typing import Optional

from ._base import TaskContext, TaskData, TaskSpec
from ._text import generate, pick
from ..errors import ConfigError
from ..schema import Options, field


class ClassificationOptions(Options):
    labels: Optional[list[str]] = field(
        None, "Label names in order; empty: the sorted distinct values of the label column."
    )


PRODUCTS = ["headphones", "blender", "backpack", "laptop", "kettle", "novel", "tent", "camera", "jacket",
            "phone case", "desk lamp", "coffee grinder", "running shoes", "keyboard", "toaster", "umbrella"]
GOOD = ["excellent", "sturdy", "delightful", "reliable", "comfortable", "superb", "well made", "fantastic",
        "quiet", "easy to use", "worth every penny", "beautiful"]
BAD = ["flimsy", "disappointing", "noisy", "awful", "uncomfortable", "broken", "overpriced", "useless",
       "cheaply made", "frustrating", "unreliable", "ugly"]
OPEN = ["I bought this {p} last month and it is {a}.", "The {p} arrived today; honestly it feels {a}.",
        "After a week with the {p} I can say it is {a}.", "My new {p} turned out {a}.",
        "This {p} is {a}, as my friend warned me.", "Overall the {p} seems {a} for the price."]
CLOSE_GOOD = ["I would buy it again.", "Highly recommended.", "Five stars from me.", "It made my day.", ""]
CLOSE_BAD = ["I am sending it back.", "Do not waste your money.", "One star.", "I regret this purchase.", ""]


def _review(rng, i):
    positive = rng.random() < 0.5
    text = pick(rng, OPEN).format(p=pick(rng, PRODUCTS), a=pick(rng, GOOD if positive else BAD))
    text = f"{text} {pick(rng, CLOSE_GOOD if positive else CLOSE_BAD)}".strip()
    return {"text": text, "label": "positive" if positive else "negative"}


def builtin() -> list[dict]:
    return generate(_review, 1200, seed=1)


def label_names(rows: list[dict], options) -> list[str]:
    if options.labels:
        return list(options.labels)
    return sorted({str(r["label"]) for r in rows})


def check(rows: list[dict], options) -> list[str]:
    """Labels must be one class each; a label seen once is likely a typo (warned, with its line)."""
    import difflib

    from ..data import where

    first: dict[str, str] = {}
    count: dict[str, int] = {}
    for i, row in enumerate(rows):
        label = row["label"]
        if isinstance(label, (list, dict, bool)):
            raise ConfigError([("data.columns.label", (
                f"{where(row, i)}: label is {label!r}; a classification row has one class, a name or an integer"
            ))])
        key = str(label)
        first.setdefault(key, where(row, i))
        count[key] = count.get(key, 0) + 1
    if options.labels:
        unknown = [k for k in first if k not in options.labels]
        if unknown:
            raise ConfigError([("task.classification.labels", (
                f"{first[unknown[0]]}: label {unknown[0]!r} is not in {list(options.labels)}; add it or fix the row"
            ))])
    notes = []
    if len(first) < 2:
        raise ConfigError([("data.columns.label", (
            f"every row has the label {next(iter(first))!r}: a classifier needs at least two classes"
        ))])
    if len(rows) >= 10:
        for key, n in count.items():
            if n == 1:
                close = difflib.get_close_matches(key, [k for k in count if k != key and count[k] > 1], n=1, cutoff=0.6)
                notes.append(f"{first[key]}: label {key!r} appears only once in {len(rows)} rows"
                             + (f" (a typo of {close[0]!r}?)" if close else "")
                             + "; it becomes a class of its own")
    return notes


def measure(tokenizer, row: dict, options, max_length: int) -> tuple[int, bool]:
    return len(tokenizer(str(row["text"]), add_special_tokens=True)["input_ids"]), False


def scores(predictions, references) -> dict:
    """Accuracy and macro-F1 of integer label arrays."""
    from sklearn.metrics import accuracy_score, f1_score

    return {
        "accuracy": float(accuracy_score(references, predictions)),
        "f1": float(f1_score(references, predictions, average="macro", zero_division=0)),
    }


def prepare(ctx: TaskContext) -> TaskData:
    import numpy as np
    from datasets import Dataset
    from transformers import DataCollatorWithPadding

    names = label_names(ctx.train_rows, ctx.options)
    index = {name: i for i, name in enumerate(names)}

    def encode(rows):
        missing = sorted({str(r["label"]) for r in rows} - set(index))
        if missing:
            raise ValueError(f"task.classification.labels: labels {missing} are not in {names}; add them")
        ds = Dataset.from_list([{"text": str(r["text"]), "label": index[str(r["label"])]} for r in rows])
        return ds.map(
            lambda b: ctx.tokenizer(b["text"], truncation=True, max_length=ctx.max_length),
            batched=True,
            remove_columns=["text"],
        ).rename_column("label", "labels")

    def compute_metrics(pred):
        return scores(np.asarray(pred.predictions), np.asarray(pred.label_ids))

    return TaskData(
        train=encode(ctx.train_rows),
        eval=encode(ctx.eval_rows),
        collator=DataCollatorWithPadding(ctx.tokenizer),
        compute_metrics=compute_metrics,
        preprocess_logits=lambda logits, labels: logits.argmax(-1),
    )


SPECS = [
    TaskSpec(
        name="classification",
        title="Text classification",
        summary="One label per text (sentiment, topic, intent); accuracy and macro-F1.",
        model_kind="seq_cls",
        default_model="builtin:minilm",
        columns={"text": "the text to classify", "label": "its class (a name or an integer)"},
        metric="accuracy",
        greater_is_better=True,
        metrics=("accuracy", "f1"),
        options=ClassificationOptions,
        builtin=builtin,
        prepare=prepare,
        label_names=label_names,
        check=check,
        measure=measure,
        scenario="NLP tasks: text classification, NER, machine translation",
    )
]
