"""Any task's rows as chat conversations: ``{"messages": [{"role", "content"}, ...]}``.

Chat rows stay as they are (with the task's system prompt in front); every
other task becomes an instruction turn and an answer turn, in that task's own
prompt format (translation's ``source_prefix``, classification's label names,
QA's question and context, NER's BIO tags, the opening of a domain or
creative text). Rows come from ftkit's own loading (:func:`ftkit.data.load_rows`),
so built-in data, JSONL/CSV files and column mappings all work the same.

``check_line`` applies the rules hosted chat fine-tuning services state for
each line: known roles, no empty turns, a user turn, an assistant turn last.
"""
from __future__ import annotations

import json
import re
from typing import Callable, Optional

from ..errors import ConfigError

ROLES = ("system", "user", "assistant")
Messages = list[dict]


def _turns(system: Optional[str], user: str, assistant: str) -> Messages:
    out = [{"role": "system", "content": system}] if system else []
    return out + [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]


def _chat(rows, config) -> list[Messages]:
    from ..tasks.chat import _messages, with_system

    opts = config.task_options
    return [with_system(_messages(row["messages"], i), opts.system_prompt) for i, row in enumerate(rows)]


def _classification(rows, config, all_rows) -> list[Messages]:
    from ..tasks.classification import label_names

    names = label_names(all_rows, config.task_options)
    system = f"Classify the text. Answer with exactly one label: {', '.join(names)}."

    def name(label) -> str:
        if isinstance(label, int) and not isinstance(label, bool) and str(label) not in names and 0 <= label < len(names):
            return names[label]
        return str(label)

    return [_turns(system, str(r["text"]), name(r["label"])) for r in rows]


def _ner(rows, config, all_rows) -> list[Messages]:
    tags = sorted({t for r in all_rows for t in r["tags"]} | set(config.task_options.labels or []))
    system = ("Tag every word of the sentence with its BIO entity tag, one 'word<TAB>tag' line per word in order. "
              f"Tags: {', '.join(tags)}.")
    return [_turns(system, " ".join(map(str, r["tokens"])),
                   "\n".join(f"{w}\t{t}" for w, t in zip(r["tokens"], r["tags"]))) for r in rows]


def _translation(rows, config, all_rows) -> list[Messages]:
    prefix = config.task_options.source_prefix
    system = None if prefix else "Translate the text. Answer with the translation only."
    return [_turns(system, f"{prefix}{r['source']}", str(r["target"])) for r in rows]


def _qa(rows, config, all_rows) -> list[Messages]:
    system = "Answer the question with a short span copied from the context."

    def answer(value) -> str:
        if isinstance(value, dict):
            text = value.get("text")
            return str(text[0] if isinstance(text, list) and text else text or "")
        if isinstance(value, str) and value.startswith("{"):
            try:
                return answer(json.loads(value))
            except json.JSONDecodeError:
                pass
        return str(value)

    return [_turns(system, f"Context: {r['context']}\nQuestion: {r['question']}", answer(r["answer"])) for r in rows]


_SENTENCE = re.compile(r"(?<=[.!?:])\s+")


def _opening(text: str) -> tuple[str, str]:
    """(opening, rest): the first line if there are several, else the first sentence."""
    text = str(text).strip()
    head, nl, rest = text.partition("\n")
    if nl and rest.strip():
        return head.strip(), rest.strip()
    parts = _SENTENCE.split(text, maxsplit=1)
    if len(parts) == 2 and parts[1].strip():
        return parts[0].strip(), parts[1].strip()
    words = text.split()
    cut = max(1, len(words) // 4)
    return " ".join(words[:cut]), " ".join(words[cut:])


def _continuation(system: str) -> Callable:
    def convert(rows, config, all_rows) -> list[Messages]:
        return [_turns(system, *_opening(r["text"])) for r in rows]

    return convert


#: task name -> rows to conversations; the test suite checks every registered task has one
CONVERTERS: dict[str, Callable] = {
    "chat": lambda rows, config, all_rows: _chat(rows, config),
    "classification": _classification,
    "ner": _ner,
    "translation": _translation,
    "qa": _qa,
    "domain": _continuation("Continue the text in the same style and domain."),
    "creative": _continuation("Continue the piece in the same form and style."),
}


def conversations(config) -> tuple[list[Messages], list[Messages]]:
    """(train, eval) conversations of a config's data, split as ftkit splits it."""
    from ..data import load_rows

    name = config.task.name
    convert = getattr(config.task_spec, "to_messages", None) or CONVERTERS.get(name)
    if convert is None:
        raise ConfigError([("task.name", f"task {name!r} has no chat conversion; add one to "
                                         "ftkit/handoff/_chat.py CONVERTERS")])
    train, evals = load_rows(config)
    every = train + evals
    return convert(train, config, every), convert(evals, config, every)


def check_line(messages, where: str = "line", max_chars: Optional[int] = None) -> list[str]:
    """Problems of one conversation (empty when it is fine)."""
    if not isinstance(messages, list) or not messages:
        return [f"{where}: 'messages' must be a non-empty list"]
    problems = []
    for k, m in enumerate(messages):
        if not isinstance(m, dict) or set(m) - {"role", "content", "name", "weight"}:
            problems.append(f"{where}: message {k} must be {{role, content}}, got {m!r:.80}")
            continue
        if m.get("role") not in ROLES:
            problems.append(f"{where}: message {k} has role {m.get('role')!r}; allowed: {', '.join(ROLES)}")
        content = m.get("content")
        if not isinstance(content, str) or not content.strip():
            problems.append(f"{where}: message {k} ({m.get('role')}) is empty")
        if m.get("role") == "system" and k != 0:
            problems.append(f"{where}: message {k}: a system message may only come first")
    roles = [m.get("role") for m in messages if isinstance(m, dict)]
    if "user" not in roles:
        problems.append(f"{where}: has no user message")
    if not roles or roles[-1] != "assistant":
        problems.append(f"{where}: must end with an assistant message (the answer learned)")
    if max_chars is not None:
        size = sum(len(m.get("content") or "") for m in messages if isinstance(m, dict))
        if size > max_chars:
            problems.append(f"{where}: {size} characters, over the {max_chars} the model's context holds")
    return problems


def jsonl(conversations: list[Messages]) -> str:
    return "".join(json.dumps({"messages": c}, ensure_ascii=False) + "\n" for c in conversations)


def estimate_tokens(messages: Messages) -> int:
    """Tokens of a conversation, estimated at 4 characters a token plus 4 per message (no tokenizer)."""
    return sum(len(m["content"]) // 4 + 4 for m in messages)
