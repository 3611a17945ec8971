"""Extractive question answering: the answer is a span of the context; exact match and token F1.

Long contexts are cut into overlapping windows; at evaluation the best
start/end pair over all windows of an example, mapped back to characters
through the offset mapping, is the predicted answer. Scores use SQuAD's
normalisation (lower case, no punctuation, no articles, single spaces),
as fractions from 0 to 1.
"""
from __future__ import annotations

import collections
import re
import string

from ._base import TaskContext, TaskData, TaskSpec
from ._text import generate, pick
from ..data import where
from ..errors import ConfigError
from ..schema import Options, field


class QaOptions(Options):
    max_answer_tokens: int = field(30, "Longest answer span considered, in tokens.", ge=1, le=512)
    stride: int = field(32, "Tokens shared by consecutive windows of a long context.", ge=0, le=1024)
    n_best: int = field(20, "Start and end candidates tried per window.", ge=1, le=100, advanced=True)


FIRST = {"she": ["Mara", "Ilse", "Petra", "Nora", "Ada", "Wren", "Tessa", "Orla"],
         "he": ["Tobin", "Emil", "Caspar", "Bram", "Lucan", "Otto", "Silas", "Finn"]}
SURNAMES = ["Quill", "Harrow", "Fenwick", "Marsh", "Kettle", "Ashby", "Thorne", "Vail", "Crane", "Holloway"]
TOWNS = ["Tessaly", "Port Ardent", "Lowmere", "Brackenfield", "Saltash Cove", "Hollin", "Durrow", "Kestwick",
         "Amberley", "Northgate", "Wyndham Falls", "Carrow"]
JOBS = ["lighthouse keeper", "clockmaker", "baker", "cartographer", "ferry pilot", "glassblower", "schoolteacher",
        "beekeeper", "stonemason", "printer"]
PRIZES = ["the Silver Oar", "the Harbour Medal", "the Lantern Prize", "the Guild Star", "the Copper Bell"]
QUESTIONS = {
    "born_in": ["Where was {p} born?", "In which town was {p} born?"],
    "born_year": ["In what year was {p} born?", "When was {p} born?"],
    "job": ["What did {p} work as?", "What was the job of {p}?"],
    "works_in": ["Where did {p} work?", "In which town did {p} work?"],
    "sibling": ["Who was the sibling of {p}?", "What was the name of {p}'s sibling?"],
    "sibling_job": ["What did {s} do for a living?", "What was {s}'s trade?"],
    "prize": ["What prize did {p} win?", "Which award did {p} receive?"],
    "prize_year": ["In what year did {p} win {prize}?", "When did {p} receive {prize}?"],
}


def _person(rng):
    pronoun = pick(rng, ["she", "he"])
    return pronoun, f"{pick(rng, FIRST[pronoun])} {pick(rng, SURNAMES)}"


def _story(rng, i) -> dict:
    pronoun, person = _person(rng)
    s_pronoun, sibling = _person(rng)
    born_in, works_in, sibling_town = rng.sample(TOWNS, 3)
    job, sibling_job = rng.sample(JOBS, 2)
    born = rng.randrange(1820, 1900)
    prize, prize_year = pick(rng, PRIZES), born + rng.randrange(25, 50)
    Pro, possessive = pronoun.capitalize(), "Her" if pronoun == "she" else "His"
    relation = "sister" if s_pronoun == "she" else "brother"
    sentences = [
        f"{person} was born in {born_in} in {born}.",
        f"{Pro} worked as a {job} in {works_in}.",
        f"{possessive} {relation}, {sibling}, was a {sibling_job} in {sibling_town}.",
        f"In {prize_year} {person} won {prize}.",
    ]
    head, tail = sentences[:1], sentences[1:]
    rng.shuffle(tail)
    context = " ".join(head + tail)
    facts = {"born_in": born_in, "born_year": str(born), "job": job, "works_in": works_in, "sibling": sibling,
             "sibling_job": sibling_job, "prize": prize, "prize_year": str(prize_year)}
    topic = pick(rng, list(QUESTIONS))
    question = pick(rng, QUESTIONS[topic]).format(p=person, s=sibling, prize=prize)
    return {"question": question, "context": context, "answer": facts[topic]}


def builtin() -> list[dict]:
    return generate(_story, 2000, seed=7)


# ---- scoring (SQuAD v1.1's normalisation) ---------------------------------

def normalize(text: str) -> str:
    text = "".join(ch for ch in str(text).lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = normalize(prediction).split(), normalize(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((collections.Counter(pred) & collections.Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def scores(predictions: list[str], references: list[str]) -> dict:
    """Mean exact match and token F1 after normalisation, 0-1."""
    n = max(1, len(references))
    return {
        "exact_match": sum(normalize(p) == normalize(r) for p, r in zip(predictions, references)) / n,
        "f1": sum(token_f1(p, r) for p, r in zip(predictions, references)) / n,
    }


# ---- features ---------------------------------------------------------------

def check(rows: list[dict], options) -> list[str]:
    """Every answer must be a span of its context: refused up front, with the row's line."""
    for i, row in enumerate(rows):
        answer_span(row, i)
    return []


def answer_span(row: dict, i: int) -> tuple[str, int]:
    """(answer text, character start) of a row; ``answer`` may be text or SQuAD's {text, answer_start}."""
    answer, start = row["answer"], None
    if isinstance(answer, dict):
        text, start = answer.get("text"), answer.get("answer_start")
        text = text[0] if isinstance(text, (list, tuple)) and text else text
        start = start[0] if isinstance(start, (list, tuple)) and start else start
        answer = text
    answer, context = str(answer), str(row["context"])
    if start is None or context[int(start): int(start) + len(answer)] != answer:
        start = context.find(answer)
    if not answer or start < 0:
        raise ConfigError([(
            "data.columns.answer",
            f"{where(row, i)}: answer {answer[:60]!r} does not occur in its context; an extractive answer must be a span of it",
        )])
    return answer, int(start)


def windows(tokenizer, questions: list[str], contexts: list[str], max_length: int, stride: int) -> tuple:
    """(encoding, per window the character offsets of its context tokens, None elsewhere).

    Question and context pairs cut into overlapping windows of ``max_length``
    tokens, the same way for training, evaluation and prediction.
    """
    enc = tokenizer(
        questions, contexts, truncation="only_second", max_length=max_length, stride=min(stride, max_length // 4),
        return_overflowing_tokens=True, return_offsets_mapping=True,
    )
    offsets = [
        [o if s == 1 else None for o, s in zip(enc["offset_mapping"][f], enc.sequence_ids(f))]
        for f in range(len(enc["input_ids"]))
    ]
    return enc, offsets


def featurize(tokenizer, rows: list[dict], max_length: int, stride: int) -> tuple[list[dict], list[int], list]:
    """Windows with start/end token labels (0, 0 when the answer is outside), their row, and context offsets."""
    spans = [answer_span(row, i) for i, row in enumerate(rows)]
    enc, all_offsets = windows(tokenizer, [str(r["question"]) for r in rows], [str(r["context"]) for r in rows],
                               max_length, stride)
    features, owners, offsets = [], [], []
    for f, row_index in enumerate(enc["overflow_to_sample_mapping"]):
        answer, start_char = spans[row_index]
        end_char = start_char + len(answer)
        context_offsets = all_offsets[f]
        inside = [k for k, o in enumerate(context_offsets) if o is not None]
        start_tok = end_tok = 0
        if inside and context_offsets[inside[0]][0] <= start_char and context_offsets[inside[-1]][1] >= end_char:
            start_tok = next(k for k in inside if context_offsets[k][1] > start_char)
            end_tok = next(k for k in reversed(inside) if context_offsets[k][0] < end_char)
        feature = {k: enc[k][f] for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc}
        features.append(dict(feature, start_positions=start_tok, end_positions=end_tok))
        owners.append(row_index)
        offsets.append(context_offsets)
    return features, owners, offsets


def best_answers(start_logits, end_logits, owners, offsets, contexts, n_best: int, max_tokens: int) -> list[str]:
    """The highest-scoring valid span per example, over all its windows."""
    best = best_spans(start_logits, end_logits, owners, offsets, n_best, max_tokens)
    return [contexts[i][best[i][1]: best[i][2]] if i in best else "" for i in range(len(contexts))]


def best_spans(start_logits, end_logits, owners, offsets, n_best: int, max_tokens: int) -> dict:
    """Example index -> (score, start char, end char) of its highest-scoring valid span over all windows.

    The score is start logit + end logit: with log-probabilities in, it is the
    log of the span's probability.
    """
    import numpy as np

    best: dict[int, tuple[float, int, int]] = {}
    for f, row in enumerate(owners):
        s_logits, e_logits, offs = start_logits[f], end_logits[f], offsets[f]
        n = len(offs)
        starts = [int(k) for k in np.argsort(s_logits[:n])[::-1][:n_best]]
        ends = [int(k) for k in np.argsort(e_logits[:n])[::-1][:n_best]]
        for s in starts:
            for e in ends:
                if offs[s] is None or offs[e] is None or e < s or e - s + 1 > max_tokens:
                    continue
                score = float(s_logits[s] + e_logits[e])
                if row not in best or score > best[row][0]:
                    best[row] = (score, offs[s][0], offs[e][1])
    return best


def prepare(ctx: TaskContext) -> TaskData:
    import numpy as np
    from datasets import Dataset
    from transformers import DataCollatorWithPadding

    opts, tok = ctx.options, ctx.tokenizer
    if not getattr(tok, "is_fast", False):
        raise ConfigError([("model.name_or_path", "question answering needs a fast tokenizer (offsets); pick a model that has one")])
    train, _, _ = featurize(tok, ctx.train_rows, ctx.max_length, opts.stride)
    evals, owners, offsets = featurize(tok, ctx.eval_rows, ctx.max_length, opts.stride)
    contexts = [str(r["context"]) for r in ctx.eval_rows]
    references = [answer_span(r, i)[0] for i, r in enumerate(ctx.eval_rows)]

    def compute_metrics(pred):
        start_logits, end_logits = (np.asarray(x) for x in pred.predictions[:2])
        found = best_answers(start_logits, end_logits, owners, offsets, contexts, opts.n_best, opts.max_answer_tokens)
        return scores(found, references)

    return TaskData(
        train=Dataset.from_list(train),
        eval=Dataset.from_list(evals),
        collator=DataCollatorWithPadding(tok),
        compute_metrics=compute_metrics,
    )


SPECS = [
    TaskSpec(
        name="qa",
        title="Question answering",
        summary="Extractive QA: find the answer span in a context; exact match and token F1 (SQuAD).",
        model_kind="qa",
        default_model="builtin:minilm",
        columns={
            "question": "the question",
            "context": "the passage holding the answer",
            "answer": "the answer text, a span of the context (or SQuAD's {text, answer_start})",
        },
        metric="f1",
        greater_is_better=True,
        metrics=("f1", "exact_match"),
        options=QaOptions,
        builtin=builtin,
        prepare=prepare,
        check=check,
        scenario="question answering",
    )
]
