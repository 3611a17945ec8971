"""What the causal-LM tasks (domain, chat, creative) share: options, tokenizing, padding, sampling.

Nothing heavy at import: torch and datasets load inside the functions.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

from ..schema import Options, field

#: Tokens that end a turn in common chat templates, besides the tokenizer's eos.
TURN_ENDS = ("<|end|>", "<|im_end|>", "<|eot_id|>", "<end_of_turn>")


class GenerationOptions(Options):
    """Sample generations logged at each evaluation."""

    sample_prompts: list[str] = field(factory=list, help="Prompts generated from at each evaluation.")
    max_new_tokens: int = field(32, "Tokens generated per sample.", ge=1, le=512)
    temperature: float = field(
        0.0, "Sampling temperature for the samples; 0 decodes greedily.", ge=0, le=5
    )
    top_p: float = field(0.95, "Nucleus sampling: keep the smallest set of tokens with this much probability.",
                         gt=0, le=1, advanced=True)


def perplexity(loss: float) -> dict:
    """Perplexity from a mean token cross-entropy (capped so a diverged run stays finite JSON)."""
    return {"perplexity": math.exp(min(float(loss), 50.0))}


def with_ends(tokenizer, ids: list[int]) -> list[int]:
    """``ids`` with the tokenizer's bos in front and eos at the end, unless it put them there already."""
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    if bos is not None and (not ids or ids[0] != bos):
        ids = [bos] + ids
    if eos is not None and ids[-1] != eos:
        ids = ids + [eos]
    return ids


def prompt_ids(tokenizer, text: str) -> list[int]:
    """A plain-text prompt as the model saw text in training: bos in front, no eos."""
    ids = tokenizer(text, add_special_tokens=True)["input_ids"]
    bos = tokenizer.bos_token_id
    if bos is not None and (not ids or ids[0] != bos):
        ids = [bos] + ids
    eos = tokenizer.eos_token_id
    while len(ids) > 1 and ids[-1] == eos:
        ids = ids[:-1]
    return ids


def text_dataset(rows: list[dict], tokenizer, max_length: int, column: str = "text"):
    """A dataset of ``input_ids`` and ``labels`` (equal: every token is predicted) for plain text."""
    from datasets import Dataset

    records = []
    for row in rows:
        ids = tokenizer(str(row[column]), add_special_tokens=True)["input_ids"]
        ids = with_ends(tokenizer, ids)[:max_length]
        if len(ids) > 1:
            records.append({"input_ids": ids, "labels": list(ids)})
    return Dataset.from_list(records)


def text_measure(tokenizer, row: dict, options, max_length: int) -> tuple[int, bool]:
    """Tokens of a plain-text row as training sees it (bos and eos included); a cut text still trains."""
    return len(with_ends(tokenizer, tokenizer(str(row["text"]), add_special_tokens=True)["input_ids"])), False


class LMCollator:
    """Pads ``input_ids`` with the pad token, ``labels`` with -100, and builds the attention mask."""

    def __init__(self, pad_token_id: int):
        self.pad = pad_token_id

    def __call__(self, features: list[dict]) -> dict:
        import torch

        width = max(len(f["input_ids"]) for f in features)
        ids, labels, mask = [], [], []
        for f in features:
            n = len(f["input_ids"])
            ids.append(list(f["input_ids"]) + [self.pad] * (width - n))
            labels.append(list(f["labels"]) + [-100] * (width - n))
            mask.append([1] * n + [0] * (width - n))
        return {
            "input_ids": torch.tensor(ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "attention_mask": torch.tensor(mask, dtype=torch.long),
        }


def stop_ids(tokenizer) -> list[int]:
    """eos plus any end-of-turn token the tokenizer knows."""
    out = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    vocab = tokenizer.get_vocab()
    out += [vocab[t] for t in TURN_ENDS if t in vocab and vocab[t] not in out]
    return out


def partitioned(model) -> bool:
    """True under DeepSpeed ZeRO-3 with several ranks: generating on rank 0 alone would hang."""
    try:
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return False
    except Exception:  # noqa: BLE001 - no distributed support at all
        return False
    return any(hasattr(p, "ds_id") for p in model.parameters())


def generate_text(model, tokenizer, ids: list[int], options: GenerationOptions, seed: int) -> str:
    """One continuation of ``ids``, decoded without special tokens; the training RNG is left untouched."""
    import torch

    device = next(model.parameters()).device
    input_ids = torch.tensor([ids], dtype=torch.long, device=device)
    kwargs = dict(
        input_ids=input_ids,
        attention_mask=torch.ones_like(input_ids),
        max_new_tokens=options.max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=stop_ids(tokenizer) or None,
    )
    if options.temperature > 0:
        kwargs.update(do_sample=True, temperature=options.temperature, top_p=options.top_p, top_k=0)
    else:
        kwargs.update(do_sample=False)
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        out = model.generate(**kwargs)
    return tokenizer.decode(out[0, len(ids):], skip_special_tokens=True).strip()


def sampler(prompts: list[str], render: Callable[[object, str], list[int]], options: GenerationOptions,
            seed: int) -> Optional[Callable]:
    """A ``TaskData.samples`` callable generating from each prompt (``render`` makes its token ids)."""
    if not prompts:
        return None

    def samples(model, tokenizer) -> list[dict]:
        if partitioned(model):
            return []
        return [
            {"prompt": p, "output": generate_text(model, tokenizer, render(tokenizer, p), options, seed + i)}
            for i, p in enumerate(prompts)
        ]

    return samples


def distinct_n(texts: list[str], n: int = 2) -> float:
    """Distinct n-grams over all n-grams of whitespace words in ``texts`` (0 when there are none)."""
    grams = []
    for text in texts:
        words = text.split()
        grams += [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def plain_text_data(ctx, **extra) -> "TaskData":
    """TaskData for causal LM on a ``text`` column: perplexity and prompt samples (domain, creative)."""
    from ._base import TaskData

    tok, opts = ctx.tokenizer, ctx.options
    return TaskData(
        train=text_dataset(ctx.train_rows, tok, ctx.max_length),
        eval=text_dataset(ctx.eval_rows, tok, ctx.max_length),
        collator=LMCollator(tok.pad_token_id),
        from_loss=perplexity,
        samples=sampler(opts.sample_prompts, prompt_ids, opts, ctx.seed),
        **extra,
    )
