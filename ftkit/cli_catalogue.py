"""What there is to choose from: ``methods``, ``tasks``, ``presets``."""
from __future__ import annotations

import json

from .printer import _table

def cmd_methods(args) -> int:
    from .methods import methods

    rows = []
    for spec in methods:
        if args.task:
            from .tasks import tasks

            if spec.refuses(tasks.get(args.task).model_kind):
                continue
        rows.append({
            "name": spec.name, "title": spec.title, "family": spec.family, "kind": spec.kind,
            "summary": spec.summary, "memory": spec.trades.memory, "params": spec.trades.params,
            "speed": spec.trades.speed, "mergeable": spec.mergeable, "quantized_base": spec.quantized_base,
            "model_kinds": sorted(spec.model_kinds),
        })
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(_table(rows, ["name", "title", "memory", "params", "mergeable", "summary"]))
        from .methods._unsupported import UNSUPPORTED

        print("\nnot offered: " + "; ".join(f"{name} ({why})" for name, why in UNSUPPORTED.items()))
    return 0


def cmd_tasks(args) -> int:
    from .tasks import tasks

    rows = [{"name": t.name, "title": t.title, "model_kind": t.model_kind, "default_model": t.default_model,
             "metric": t.metric, "columns": list(t.columns), "summary": t.summary} for t in tasks]
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(_table([{**r, "columns": ", ".join(r["columns"])} for r in rows],
                     ["name", "title", "model_kind", "metric", "columns", "default_model"]))
    return 0


def cmd_presets(args) -> int:
    from .config import list_presets

    presets = list_presets()
    if args.json:
        print(json.dumps(presets, indent=2))
    else:
        print(_table([{"name": k, "description": v} for k, v in presets.items()], ["name", "description"]))
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("methods", help="list fine-tuning methods and what each trades")
    p.add_argument("--task", help="only methods that can train this task")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("tasks", help="list tasks, their columns and metrics")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tasks)

    p = sub.add_parser("presets", help="list ready-made configs")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_presets)
