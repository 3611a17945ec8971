"""Machine translation: a seq2seq model maps source to target text; BLEU and chrF (sacrebleu).

The built-in pairs translate simple English sentences into Veltic, a small
constructed language: a word-for-word dictionary, adjectives after their
noun, the verb at the end (subject, object, place, verb) and no word for
"the". A tiny T5 learns it from scratch in a few minutes on a CPU.
"""
from __future__ import annotations

from ._base import TaskContext, TaskData, TaskSpec
from ._causal import partitioned
from ._text import generate, pick
from ..schema import Options, field


class TranslationOptions(Options):
    source_prefix: str = field(
        "", "Text put in front of every source, e.g. 'translate English to German: ' for pretrained T5."
    )
    max_new_tokens: int = field(64, "Longest translation generated at evaluation, in tokens.", ge=1, le=1024)
    num_beams: int = field(1, "Beam search width at evaluation; 1 decodes greedily.", ge=1, le=16)
    num_samples: int = field(3, "Evaluation sources translated and logged as samples at each evaluation.", ge=0, le=32)


NOUNS = {"cat": "miro", "dog": "tasu", "bird": "kelo", "child": "amina", "farmer": "doru", "teacher": "sena"}
OBJECTS = {"apple": "pomo", "book": "libra", "ball": "bolo", "letter": "karta"}
PLACES = {"house": "kasa", "river": "lenu", "garden": "orto"}
ADJS = {"big": "grano", "small": "piti", "red": "roso", "old": "vesto"}
VERBS = {"sees": "vidas", "likes": "amas", "follows": "segas"}
OBJECT_VERBS = {"eats": "manjas", "reads": "legas", "throws": "jetas"}
PREPS = {"near": "prope", "in": "en"}
ARTICLES = {"the": None, "a": "na"}


def _phrase(rng, lexicon: dict) -> tuple[list[str], list[str]]:
    """(English words, Veltic words) of a noun phrase: article, optional adjective, noun."""
    article = pick(rng, list(ARTICLES))
    noun = pick(rng, list(lexicon))
    adj = pick(rng, list(ADJS)) if rng.random() < 0.5 else None
    english = ([adj] if adj else []) + [noun]
    english = ["an" if article == "a" and english[0][0] in "aeiou" else article] + english
    veltic = ([ARTICLES[article]] if ARTICLES[article] else []) + [lexicon[noun]] + ([ADJS[adj]] if adj else [])
    return english, veltic


def _pair(rng, i) -> dict:
    subject_en, subject_vl = _phrase(rng, NOUNS)
    if rng.random() < 0.5:
        verb = pick(rng, list(VERBS))
        object_en, object_vl = _phrase(rng, NOUNS)
        verb_vl = VERBS[verb]
    else:
        verb = pick(rng, list(OBJECT_VERBS))
        object_en, object_vl = _phrase(rng, OBJECTS)
        verb_vl = OBJECT_VERBS[verb]
    place_en, place_vl = [], []
    if rng.random() < 0.4:
        prep = pick(rng, list(PREPS))
        words_en, words_vl = _phrase(rng, PLACES)
        place_en, place_vl = [prep] + words_en, [PREPS[prep]] + words_vl
    english = subject_en + [verb] + object_en + place_en
    veltic = subject_vl + object_vl + place_vl + [verb_vl]
    return {"source": " ".join(english) + " .", "target": " ".join(veltic) + " ."}


def builtin() -> list[dict]:
    return generate(_pair, 3000, seed=6)


def scores(predictions: list[str], references: list[str]) -> dict:
    """Corpus BLEU and chrF (0-100, sacrebleu's defaults) against one reference each."""
    import sacrebleu

    return {
        "bleu": float(sacrebleu.corpus_bleu(predictions, [references]).score),
        "chrf": float(sacrebleu.corpus_chrf(predictions, [references]).score),
    }


def _ended(tokenizer, ids: list[int]) -> list[int]:
    eos = tokenizer.eos_token_id
    return ids if eos is None or (ids and ids[-1] == eos) else ids + [eos]


def measure(tokenizer, row: dict, options, max_length: int) -> tuple[int, bool]:
    """The longer side (source with its prefix, or target), with the end token each gets."""
    source = tokenizer(options.source_prefix + str(row["source"]))["input_ids"]
    target = tokenizer(str(row["target"]))["input_ids"]
    return max(len(_ended(tokenizer, source)), len(_ended(tokenizer, target))), False


def prepare(ctx: TaskContext) -> TaskData:
    import numpy as np
    from datasets import Dataset
    from transformers import DataCollatorForSeq2Seq

    tok, opts = ctx.tokenizer, ctx.options

    def encode(rows):
        records = []
        for row in rows:
            source = tok(opts.source_prefix + str(row["source"]), truncation=True, max_length=ctx.max_length - 1)
            target = tok(str(row["target"]), truncation=True, max_length=ctx.max_length - 1)
            source = _ended(tok, source["input_ids"])
            records.append({"input_ids": source, "attention_mask": [1] * len(source),
                            "labels": _ended(tok, target["input_ids"])})
        return Dataset.from_list(records)

    def decode(ids) -> list[str]:
        ids = np.where(np.asarray(ids) < 0, tok.pad_token_id, ids)
        return [t.strip() for t in tok.batch_decode(ids, skip_special_tokens=True)]

    def compute_metrics(pred):
        predictions = pred.predictions[0] if isinstance(pred.predictions, tuple) else pred.predictions
        return scores(decode(predictions), decode(pred.label_ids))

    shown = ctx.eval_rows[: opts.num_samples]

    def samples(model, tokenizer) -> list[dict]:
        import torch

        if partitioned(model):
            return []
        out = []
        device = next(model.parameters()).device
        for row in shown:
            ids = _ended(tokenizer, tokenizer(opts.source_prefix + str(row["source"]))["input_ids"])
            ids = torch.tensor([ids], device=device)
            generated = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                       max_new_tokens=opts.max_new_tokens, num_beams=opts.num_beams, do_sample=False)
            out.append({"prompt": str(row["source"]), "output": decode(generated.to(torch.long).cpu())[0],
                        "reference": str(row["target"])})
        return out

    return TaskData(
        train=encode(ctx.train_rows),
        eval=encode(ctx.eval_rows),
        collator=DataCollatorForSeq2Seq(tok, label_pad_token_id=-100),
        compute_metrics=compute_metrics,
        generate=True,
        generation_kwargs={"max_length": opts.max_new_tokens, "num_beams": opts.num_beams},
        samples=samples if shown else None,
    )


SPECS = [
    TaskSpec(
        name="translation",
        title="Machine translation",
        summary="Sequence-to-sequence: source text in, translation out; BLEU and chrF.",
        model_kind="seq2seq",
        default_model="builtin:tiny-t5",
        columns={"source": "text in the source language", "target": "its translation"},
        metric="bleu",
        greater_is_better=True,
        metrics=("bleu", "chrf"),
        options=TranslationOptions,
        builtin=builtin,
        prepare=prepare,
        measure=measure,
        scenario="NLP tasks: text classification, NER, machine translation",
    )
]
