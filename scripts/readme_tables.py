"""Regenerate the README's method and task tables from the registries.

    .venv/bin/python scripts/readme_tables.py          # rewrite README.md
    .venv/bin/python scripts/readme_tables.py --check  # exit 1 if README.md is stale

The tables hold only what the registries declare and the test suite checks
for every entry (each method trains, saves/reloads, merges where marked).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from ftkit.methods import methods
from ftkit.tasks import tasks

README = Path(__file__).resolve().parents[1] / "README.md"
KIND_SHORT = {"causal_lm": "causal", "seq2seq": "seq2seq", "seq_cls": "cls", "token_cls": "token", "qa": "qa"}


def methods_table() -> str:
    rows = [
        "| method | what it does | memory | trainable | speed | merges | 4/8-bit base | heads |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m in methods:
        heads = ", ".join(KIND_SHORT[k] for k in ("causal_lm", "seq2seq", "seq_cls", "token_cls", "qa") if k in m.model_kinds)
        rows.append(
            f"| `{m.name}` ({m.title}) | {m.summary} | {m.trades.memory} | {m.trades.params} | {m.trades.speed} | "
            f"{'yes' if m.mergeable else 'no'} | {'yes' if m.quantized_base else 'no'} | {heads} |"
        )
    try:
        from ftkit.methods._unsupported import UNSUPPORTED
    except ImportError:
        UNSUPPORTED = {}
    text = "\n".join(rows)
    if UNSUPPORTED:
        text += "\n\nNot offered (peft ships them, but they cannot train a task here on their own):\n\n"
        text += "\n".join(f"- `{name}`: {why}" for name, why in UNSUPPORTED.items())
    return text


def tasks_table() -> str:
    rows = [
        "| task | what it learns | head | built-in model | columns | metrics | scenario |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in tasks:
        metrics = ", ".join(t.metrics or (t.metric,))
        rows.append(
            f"| `{t.name}` | {t.summary} | {t.model_kind} | `{t.default_model}` | "
            f"{', '.join(f'`{c}`' for c in t.columns)} | {metrics} | {t.scenario} |"
        )
    return "\n".join(rows)


def render(text: str) -> str:
    for marker, body in (("methods-table", methods_table()), ("tasks-table", tasks_table())):
        pattern = re.compile(rf"<!-- {marker} -->.*?<!-- /{marker} -->|<!-- {marker} -->", re.S)
        text = pattern.sub(lambda _: f"<!-- {marker} -->\n{body}\n<!-- /{marker} -->", text, count=1)
    return text


def main() -> int:
    current = README.read_text()
    fresh = render(current)
    if "--check" in sys.argv:
        if fresh != current:
            print("README.md tables are stale: run scripts/readme_tables.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(fresh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
