"""Every registered method on a built-in task: trainable share, speed, loss, metric, memory.

    .venv/bin/python bench/methods.py [--steps 30] [--only lora,dora] [--out table.md]

Methods that can train text classification run on the demo task (the real
pretrained MiniLM); the others on domain adaptation with builtin:tiny-llama.
Each run is a real ftkit run through the engine; the table is printed as
Markdown and, with --out, written to a file.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

from ftkit.config import RunConfig
from ftkit.engine.train import train
from ftkit.methods import methods
from ftkit.store import RunStore


def config_for(spec, steps: int) -> RunConfig:
    common = {
        "method.name": spec.name,
        "training.max_steps": steps,
        "training.logging_steps": 1,
        "training.eval_steps": 0,
        "training.batch_size": 16,
        "training.max_seq_length": 64,
        "data.max_eval_samples": 64,
    }
    if not spec.refuses("seq_cls"):
        return RunConfig.preset("demo").update({**common, "training.learning_rate": 5e-3})
    return RunConfig().update({**common, "task.name": "domain", "training.learning_rate": 3e-3})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--only", help="comma-separated method names")
    parser.add_argument("--out", help="also write the Markdown table here")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else methods.names()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    store = RunStore(tempfile.mkdtemp(prefix="ftkit-bench-"))
    header = "| method | task | trainable params | trainable % | s/step | loss first -> last | metric | peak RSS MB |"
    rows = [header, "|" + "---|" * 8]
    print(header, flush=True)
    for name in names:
        spec = methods.get(name)
        config = config_for(spec, args.steps)
        record = store.create(config)
        t0 = time.time()
        s = train(config, record.path)
        task = config.task_spec
        if s["status"] != "finished":
            row = f"| {name} | {task.name} | - | - | - | failed: {(s['reason'] or '')[:60]} | - | - |"
        else:
            metric = s["metrics"].get(task.metric)
            row = (f"| {name} | {task.name} | {s['trainable_params']:,} | {s['trainable_pct']:.3f} | "
                   f"{s['s_per_step']:.3f} | {s['loss_first']:.3f} -> {s['loss_last']:.3f} | "
                   f"{task.metric} {metric:.3g} | {s['peak_rss_mb']:.0f} |")
        rows.append(row)
        print(row, flush=True)
        print(f"  {name}: {time.time() - t0:.0f} s wall", file=sys.stderr, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
