"""Every registered method on a built-in task: trainable share, speed, loss, metric, peak memory.

    .venv/bin/python bench/methods.py [--steps 12] [--only lora,dora] [--out table.md] [--isolate]

The default (49 methods x 12 steps) takes about 10 minutes on 2 busy cores;
``--steps 30`` shows clearer learning.

Methods that can train text classification on an encoder run on the demo
task (the real pretrained MiniLM); the others (decoder-only ones such as
ShadowPEFT, CPT, AdaptionPrompt) on domain adaptation with builtin:tiny-llama.
Peak memory is what each run adds to the process at its peak (RSS): before
each run the freed heap is handed back to the OS and the kernel's high-water
mark is reset (``/proc/self/clear_refs``), so runs sharing one process are
measured apart; the process has torch, transformers and peft loaded by then,
as a notebook kernel has after its first run (an untimed one-step LoRA run
warms it up). ``--isolate`` runs each method in its own worker process
instead (slower: every run starts a fresh interpreter) and reports the
run's own measurement there (RSS above the worker's baseline, which also
counts importing peft and datasets). bench/memory.py sets these peaks
beside the estimator's predictions.
Seconds per step are over the training loop (train begin to the last
step), without the final evaluation and save; torch runs one thread by
default (``--threads``), which keeps them steady on a shared machine.
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
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import PeakRss, command_line, offline_env, run_worker, stamp  # noqa: E402

from ftkit.config import RunConfig  # noqa: E402
from ftkit.methods import methods  # noqa: E402
from ftkit.store import RunStore  # noqa: E402


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


def run(config: RunConfig, store: RunStore, isolate: bool) -> tuple[dict, Optional[float], Optional[float]]:
    """(summary, peak MB, s/step) of one run: in this process with its peak measured apart, or in a worker.
    Seconds per step are over the training loop alone (the run's summary also counts the final eval and save)."""
    from ftkit.events import read_events

    if isolate:
        sections = {k: v for k, v in config.to_dict().items() if k != "runs_dir"}
        result = run_worker({**sections, "distributed.launcher": "python"}, str(store.root))
        summary, events, peak = result["summary"], result["events"], result["summary"].get("run_peak_mb")
    else:
        from ftkit.engine.train import train

        record = store.create(config)
        with PeakRss() as measured:
            summary = train(config, record.path)
        events, peak = read_events(record.path / "events.jsonl")[0], measured.added_mb
    steps = [e for e in events if e["type"] == "step" and e.get("elapsed") is not None]
    per_step = steps[-1]["elapsed"] / steps[-1]["step"] if steps and steps[-1]["step"] else None
    return summary, peak, per_step


def warm_up(store: RunStore, tasks: set[str]) -> None:
    """One untimed step of LoRA per task, so no measured run pays imports or first loads (as in a
    kernel's second run)."""
    from ftkit.engine.train import train

    for task in sorted(tasks):
        config = config_for(methods.get("lora"), 1, task)
        train(config, store.create(config).path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--only", help="comma-separated method names")
    parser.add_argument("--out", help="also write the Markdown table here")
    parser.add_argument("--task", default="", help="run every method on this task (classification or domain)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (OMP_NUM_THREADS; 0: torch's default); 1 keeps s/step steady on a shared machine")
    parser.add_argument("--isolate", action="store_true",
                        help="each method in its own worker process (peak memory measured there)")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else [m.name for m in methods if not m.needs_cuda]
    unknown = [n for n in names if n not in methods]
    if unknown:
        parser.error(f"--only: unknown method {unknown[0]!r}; `ftkit methods` lists them")
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before torch loads; workers inherit it
    offline_env()
    print(stamp(command_line()), flush=True)
    store = RunStore(tempfile.mkdtemp(prefix="ftkit-bench-"))
    configs = {name: config_for(methods.get(name), args.steps, args.task) for name in names}
    if args.isolate:
        peak_label = "peak MB (own process)"
    elif PeakRss.available():
        peak_label = "peak MB added"
        warm_up(store, {c.task.name for c in configs.values()})
    else:
        peak_label = "peak MB (not measurable here)"
    header = (f"| method | task | lr | trainable params | trainable % | s/step | loss first -> last | metric | "
              f"{peak_label} |")
    rows = [header, "|" + "---|" * 9]
    print(header, flush=True)
    for name in names:
        config = configs[name]
        t0 = time.time()
        s, peak, per_step = run(config, store, args.isolate)
        task = config.task_spec
        if s.get("status") != "finished":
            row = f"| {name} | {task.name} | - | - | - | - | failed: {(s.get('reason') or '')[:60]} | - | - |"
        else:
            metric = s["metrics"].get(task.metric)
            row = (f"| {name} | {task.name} | {config.training.learning_rate:g} | {s['trainable_params']:,} | {s['trainable_pct']:.3f} | "
                   f"{per_step or s['s_per_step']:.3f} | {s['loss_first']:.3f} -> {s['loss_last']:.3f} | "
                   f"{task.metric} {metric:.3g} | {'-' if peak is None else f'{peak:,.0f}'} |")
        rows.append(row)
        print(row, flush=True)
        print(f"  {name}: {time.time() - t0:.0f} s wall", file=sys.stderr, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(rows) + "\n")
    shutil.rmtree(store.root, ignore_errors=True)  # the runs' adapters and models: the table is printed


if __name__ == "__main__":
    main()
