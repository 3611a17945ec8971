"""Every registered method on a built-in task: trainable share, speed, loss, metric, memory.

    .venv/bin/python bench/methods.py [--steps 30] [--only lora,dora] [--out table.md]

Methods that can train text classification on an encoder run on the demo
task (the real pretrained MiniLM); the others (decoder-only ones such as
ShadowPEFT, CPT, AdaptionPrompt) on domain adaptation with builtin:tiny-llama.
Every run shares one process, so memory is left to bench/memory.py.
The learning rate depends on what trains (printed in the table): whole
weights take small steps, low-rank adapters larger ones, and vectors or
soft prompts (few parameters, often barely moving in a short run) the
largest.
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


def learning_rate(spec) -> float:
    if spec.kind == "full":
        return 1e-4
    if spec.kind == "prompt" or spec.barely_learns:
        return 3e-2
    return 5e-3


def config_for(spec, steps: int, task: str = "") -> RunConfig:
    common = {
        "method.name": spec.name,
        "training.max_steps": steps,
        "training.logging_steps": 1,
        "training.eval_steps": 0,
        "training.batch_size": 16,
        "training.max_seq_length": 64,
        "data.max_eval_samples": 64,
        "training.learning_rate": learning_rate(spec),
    }
    if task == "classification" or (not task and not spec.refuses("seq_cls") and spec.name != "shadow"):
        return RunConfig.preset("demo").update(common)
    return RunConfig().update({**common, "task.name": task or "domain"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--only", help="comma-separated method names")
    parser.add_argument("--out", help="also write the Markdown table here")
    parser.add_argument("--task", default="", help="run every method on this task (classification or domain)")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else [m.name for m in methods if not m.needs_cuda]
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    store = RunStore(tempfile.mkdtemp(prefix="ftkit-bench-"))
    header = "| method | task | lr | trainable params | trainable % | s/step | loss first -> last | metric |"
    rows = [header, "|" + "---|" * 8]
    print(header, flush=True)
    for name in names:
        spec = methods.get(name)
        config = config_for(spec, args.steps, args.task)
        record = store.create(config)
        t0 = time.time()
        s = train(config, record.path)
        task = config.task_spec
        if s["status"] != "finished":
            row = f"| {name} | {task.name} | - | - | - | - | failed: {(s['reason'] or '')[:60]} | - |"
        else:
            metric = s["metrics"].get(task.metric)
            row = (f"| {name} | {task.name} | {config.training.learning_rate:g} | {s['trainable_params']:,} | {s['trainable_pct']:.3f} | "
                   f"{s['s_per_step']:.3f} | {s['loss_first']:.3f} -> {s['loss_last']:.3f} | "
                   f"{task.metric} {metric:.3g} |")
        rows.append(row)
        print(row, flush=True)
        print(f"  {name}: {time.time() - t0:.0f} s wall", file=sys.stderr, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
