"""Chat SFT: conversations rendered with the tokenizer's chat template; loss on assistant tokens only.

The built-in data is a guide to a small fictional world, the Lumen Isles,
whose facts every answer states the same way, so the fit is measurable:
perplexity on the assistant's tokens, and sample answers at each evaluation.
"""
from __future__ import annotations

import json
from typing import Any, Optional

from ._base import TaskContext, TaskData, TaskSpec
from ._causal import GenerationOptions, LMCollator, perplexity, sampler
from ._text import generate, pick
from ..data import where
from ..errors import ConfigError
from ..schema import field

ROLES = ("system", "user", "assistant", "tool")


class ChatOptions(GenerationOptions):
    system_prompt: Optional[str] = field(
        None, "System message put in front of every conversation that has none (and of the sample prompts).",
        builtin_data=True,
    )
    sample_prompts: list[str] = field(
        factory=lambda: ["What is the capital of Corra?", "When is the festival on Ysmere?",
                         "What does Thale export?"],
        help="User messages answered at each evaluation (empty with your own data unless you set them).",
        builtin_data=True,
    )


# island, capital, people, export, festival, month, ruler, ferry port
ISLES = [
    ("Corra", "Vell", "4,000", "salt", "the Lantern Night", "March", "Warden Asha", "Port Idris"),
    ("Ysmere", "Kolt", "12,000", "amber", "the Tide Feast", "June", "Council of Nine", "Vell"),
    ("Thale", "Orun", "900", "wool", "the Shearing Fair", "May", "Elder Brann", "Kolt"),
    ("Marrow", "Sel", "7,500", "glass", "the Kiln Days", "October", "Lady Ione", "Orun"),
    ("Quill", "Dunmere", "2,200", "paper", "the Ink Moon", "January", "Scribe Tamsin", "Sel"),
    ("Brisk", "Harth", "15,000", "iron", "the Forge Week", "August", "Ironmaster Cade", "Dunmere"),
    ("Elen", "Mistral", "600", "honey", "the Bloom Vigil", "April", "Keeper Nell", "Harth"),
    ("Sorrel", "Fane", "3,300", "dye", "the Colour Fair", "September", "Dyer Wren", "Mistral"),
]
QUESTIONS = {
    "capital": ["What is the capital of {i}?", "Which town is the capital of {i}?", "Where is the capital of {i}?"],
    "people": ["How many people live on {i}?", "What is the population of {i}?", "How big is {i}?"],
    "export": ["What does {i} export?", "What is {i} known for trading?", "What is the main export of {i}?"],
    "festival": ["When is the festival on {i}?", "What festival does {i} hold?", "Tell me about the festival of {i}."],
    "ruler": ["Who rules {i}?", "Who governs {i}?", "Who is in charge on {i}?"],
    "ferry": ["How do I get to {i}?", "Where does the ferry to {i} leave from?", "How can I travel to {i}?"],
}
GREETINGS = ["Hello!", "Hi there.", "Good morning.", "Hey, can you help me?"]
THANKS = ["Thanks!", "Thank you.", "Great, thanks.", "That helps, thank you."]


def answer(isle: tuple, topic: str) -> str:
    name, capital, people, export, festival, month, ruler, port = isle
    return {
        "capital": f"The capital of {name} is {capital}.",
        "people": f"About {people} people live on {name}.",
        "export": f"{name} exports {export}.",
        "festival": f"{name} holds {festival} every {month}.",
        "ruler": f"{name} is ruled by {ruler}.",
        "ferry": f"Take the ferry to {name} from {port}.",
    }[topic]


def _conversation(rng, i) -> dict:
    topics = list(QUESTIONS)
    messages = []
    if rng.random() < 0.2:
        messages += [{"role": "user", "content": pick(rng, GREETINGS)},
                     {"role": "assistant", "content": "Hello! Ask me anything about the Lumen Isles."}]
    for _ in range(1 + (rng.random() < 0.4)):
        isle, topic = pick(rng, ISLES), pick(rng, topics)
        messages += [{"role": "user", "content": pick(rng, QUESTIONS[topic]).format(i=isle[0])},
                     {"role": "assistant", "content": answer(isle, topic)}]
    if rng.random() < 0.2:
        messages += [{"role": "user", "content": pick(rng, THANKS)},
                     {"role": "assistant", "content": "You are welcome. Safe travels in the Isles!"}]
    return {"messages": messages}


def builtin() -> list[dict]:
    return generate(_conversation, 1500, seed=3)


def _messages(value, row: str) -> list[dict]:
    """A row's messages, checked (``row`` says where it is: "chats.jsonl line 9"); a JSON string is parsed."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = None
    if not isinstance(value, list) or not value:
        raise ConfigError([(
            "data.columns.messages",
            f"{row}: messages must be a list of {{role, content}} with role one of {', '.join(ROLES)}",
        )])
    for k, m in enumerate(value, 1):
        if not isinstance(m, dict) or not isinstance(m.get("content"), str):
            raise ConfigError([("data.columns.messages", (
                f"{row}: message {k} is {str(m)[:60]!r}; each message is {{role, content}} with text content"
            ))])
        if m.get("role") not in ROLES:
            raise ConfigError([("data.columns.messages", (
                f"{row}: message {k} has role {m.get('role')!r}; use one of {', '.join(ROLES)}"
            ))])
        if m["role"] in ("user", "assistant") and not m["content"].strip():
            raise ConfigError([("data.columns.messages", (
                f"{row}: message {k} ({m['role']}) is empty; fill it in or remove the turn"
            ))])
    if not any(m["role"] == "assistant" for m in value):
        raise ConfigError([("data.columns.messages", f"{row}: has no assistant message to learn from")])
    return [{"role": m["role"], "content": m["content"]} for m in value]


def check(rows: list[dict], options) -> list[str]:
    for i, row in enumerate(rows):
        _messages(row["messages"], where(row, i))
    return []


def measure(tokenizer, row: dict, options, max_length: int) -> tuple[int, bool]:
    """Tokens of the whole rendered conversation; dropped when no answer token survives the cut."""
    messages = with_system(_messages(row["messages"], ""), options.system_prompt)
    example = encode_chat(tokenizer, messages, 10**9)
    return len(example["input_ids"]), not any(label != -100 for label in example["labels"][:max_length])


def render(tokenizer, messages: list[dict], generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def encode_chat(tokenizer, messages: list[dict], max_length: int) -> dict:
    """``input_ids`` of the rendered conversation and ``labels`` that are -100 except on assistant turns.

    Each assistant span runs from the end of the template's generation prompt
    to the end of that turn (its end-of-turn marker included, so the model
    learns to stop). The pieces are tokenized apart, as at generation time.
    """
    full = render(tokenizer, messages)
    pieces: list[tuple[str, bool]] = []
    at = 0
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        head = render(tokenizer, messages[:k], generation_prompt=True)
        upto = render(tokenizer, messages[: k + 1])
        if full.startswith(head) and full.startswith(upto) and len(head) >= at:
            start, end = len(head), len(upto)
        else:  # a template that rewrites earlier turns: find the content itself
            start = full.find(message["content"], at)
            if start < 0:
                continue
            end = start + len(message["content"])
        pieces += [(full[at:start], False), (full[start:end], True)]
        at = end
    pieces.append((full[at:], False))
    ids, labels = [], []
    for text, learn in pieces:
        if not text:
            continue
        part = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += part
        labels += part if learn else [-100] * len(part)
    return {"input_ids": ids[:max_length], "labels": labels[:max_length]}


def with_system(messages: list[dict], system: Optional[str]) -> list[dict]:
    if system and messages[0]["role"] != "system":
        return [{"role": "system", "content": system}] + messages
    return messages


def dataset(rows: list[dict], tokenizer, options, max_length: int):
    from datasets import Dataset

    records = []
    for i, row in enumerate(rows):
        example = encode_chat(tokenizer, with_system(_messages(row["messages"], where(row, i)), options.system_prompt),
                              max_length)
        if any(label != -100 for label in example["labels"]):  # truncation can cut every answer away
            records.append(example)
    return Dataset.from_list(records)


def prepare(ctx: TaskContext) -> TaskData:
    tok, opts = ctx.tokenizer, ctx.options
    if not getattr(tok, "chat_template", None):
        raise ConfigError([("model.name_or_path", "its tokenizer has no chat template; pick a chat or instruct model")])

    def prompt(tokenizer, question: str) -> list[int]:
        text = render(tokenizer, with_system([{"role": "user", "content": question}], opts.system_prompt), True)
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    return TaskData(
        train=dataset(ctx.train_rows, tok, opts, ctx.max_length),
        eval=dataset(ctx.eval_rows, tok, opts, ctx.max_length),
        collator=LMCollator(tok.pad_token_id),
        from_loss=perplexity,
        samples=sampler(opts.sample_prompts, prompt, opts, ctx.seed),
    )


def prompt(tokenizer, text: Any, options) -> list[int]:
    """A message or a whole conversation, rendered with the chat template and the run's system prompt."""
    if isinstance(text, str):
        if not text.strip():
            raise ValueError("empty; pass the prompt")
        messages = [{"role": "user", "content": text}]
    else:
        ok = isinstance(text, list) and bool(text) and all(
            isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str) for m in text)
        if not ok:
            raise ValueError(f"a conversation is a list of {{role, content}} with role one of {', '.join(ROLES)}")
        messages = [{"role": m["role"], "content": m["content"]} for m in text]
    rendered = render(tokenizer, with_system(messages, options.system_prompt), generation_prompt=True)
    return tokenizer(rendered, add_special_tokens=False)["input_ids"]


SPECS = [
    TaskSpec(
        name="chat",
        title="Chat (SFT)",
        summary="Supervised fine-tuning on conversations with the chat template; loss on assistant turns only.",
        model_kind="causal_lm",
        default_model="builtin:tiny-llama",
        columns={"messages": "a conversation: a list of {role, content} (system, user, assistant)"},
        metric="perplexity",
        greater_is_better=False,
        metrics=("perplexity",),
        options=ChatOptions,
        builtin=builtin,
        prepare=prepare,
        check=check,
        measure=measure,
        prompt=prompt,
        scenario="human-like chatbot responses",
    )
]
