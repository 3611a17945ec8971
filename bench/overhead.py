"""ftkit's overhead: the same fine-tune through ftkit and through a plain Transformers+PEFT script.

    python bench/overhead.py [--steps 60] [--repeats 3] [--modes thread,process]

Same model (builtin:tiny-llama), rows (the domain task's built-in notes,
written once to JSONL files both sides read), LoRA settings, optimizer,
steps, batch, sequence length and seed; both evaluate once at the end and
save the adapter. Two modes, each timed A, B, A, B... in one run:

* thread: ftkit's in-kernel run (``Controller.start`` on a thread, as in a
  notebook) against the plain script's ``main()`` called in the same process;
  one untimed warm-up round first, so neither pays the imports.
* process: ftkit's subprocess worker (``distributed.launcher: python``, as
  the CLI and multi-GPU runs use) against ``python bench/plain_peft.py``,
  each a fresh interpreter.

Printed per mode: median wall seconds of each side and the median (and
range) of the per-round ratios ftkit / plain (goal: <= 1.02); the same for
CPU seconds (this process plus its waited-for workers), which waiting for a
core on a busy machine does not inflate; and the wall ratio of the training
loop alone (train begin to the last optimizer step). Torch runs one thread on both
sides by default (``--threads``): on a shared machine a multi-threaded
region stalls whenever one of its threads waits for a core.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, alternate, command_line, markdown, offline_env, ratio_summary, split_files, stamp  # noqa: E402

PLAIN = Path(__file__).resolve().parent / "plain_peft.py"
GOAL = 1.02


def settings(args) -> dict:
    return {"steps": args.steps, "batch": args.batch_size, "seq": args.max_length, "lr": 1e-3, "r": 8,
            "logging": args.logging_steps, "seed": 42, "eval_rows": args.eval_rows}


def ftkit_changes(model: str, train: str, evals: str, s: dict, launcher: str) -> dict:
    return {
        "model.name_or_path": model,
        "task.name": "domain",
        "task.domain.sample_prompts": [],  # the plain script generates no samples either
        "data.source": train,
        "data.eval_source": evals,
        "method.name": "lora",
        "method.lora.r": s["r"],
        "method.lora.lora_alpha": 2 * s["r"],
        "method.lora.lora_dropout": 0.05,
        "training.max_steps": s["steps"],
        "training.batch_size": s["batch"],
        "training.max_seq_length": s["seq"],
        "training.learning_rate": s["lr"],
        "training.logging_steps": s["logging"],
        "training.eval_steps": 0,
        "training.save_steps": 0,
        "training.seed": s["seed"],
        # Transformers' default optimizer with torch >= 2.8, which the plain script gets
        "training.optimizer": "adamw_torch_fused",
        "distributed.launcher": launcher,
    }


def plain_argv(model: str, train: str, evals: str, out: str, s: dict) -> list[str]:
    return ["--model", model, "--train", train, "--eval", evals, "--out", out, "--method", "lora",
            "--steps", str(s["steps"]), "--batch-size", str(s["batch"]), "--max-length", str(s["seq"]),
            "--lr", str(s["lr"]), "--logging-steps", str(s["logging"]), "--seed", str(s["seed"]), "--r", str(s["r"])]


def ftkit_loop_s(result: dict) -> float:
    """First to last optimizer step, from the run's step events (elapsed is seconds since train begin)."""
    steps = [e for e in result["events"] if e["type"] == "step"]
    return steps[-1]["elapsed"] if steps else float("nan")


def plain_loop_s(out: dict) -> float:
    marks = out["marks"]
    return marks[-1][0] - marks[0][0] if len(marks) > 1 else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--logging-steps", type=int, default=5)
    parser.add_argument("--eval-rows", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per mode")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds before the thread mode's timed ones")
    parser.add_argument("--modes", default="thread,process")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads on both sides (OMP_NUM_THREADS); 1 keeps timings steady on a shared machine")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - {"thread", "process"}
    if unknown:
        parser.error(f"--modes: unknown {sorted(unknown)}; use thread and/or process")

    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before torch loads; workers inherit it
    offline_env()
    from ftkit.config import RunConfig
    from ftkit.models import resolve

    work = Path(tempfile.mkdtemp(prefix="ftkit-bench-overhead-"))
    s = settings(args)
    model = resolve("builtin:tiny-llama")
    base = RunConfig().update({"task.name": "domain", "data.max_eval_samples": args.eval_rows})
    train, evals = split_files(base, work)
    runs_dir = str(work / "runs")
    log = lambda line: print("  " + line, file=sys.stderr, flush=True)  # noqa: E731
    print(stamp(command_line()))
    print(f"work: LoRA r={s['r']} on {model.split('/')[-1]}, {s['steps']} steps x batch {s['batch']}, "
          f"max {s['seq']} tokens, seed {s['seed']}, eval {s['eval_rows']} rows at the end, adapter saved\n")

    counter = iter(range(10**6))
    figures = {}
    losses: dict[str, float] = {}

    for mode in modes:
        loops = {"ftkit": [], "plain": []}
        if mode == "thread":
            import plain_peft

            def ftkit_job():
                r = _run_ftkit(model, train, evals, s, "thread", runs_dir)
                loops["ftkit"].append(ftkit_loop_s(r))
                losses["ftkit"] = r["summary"]["metrics"].get("loss")

            def plain_job():
                with contextlib.redirect_stdout(io.StringIO()):  # the Trainer prints its logs; keep the table clean
                    out = plain_peft.main(plain_argv(model, train, evals, str(work / f"plain-{next(counter)}"), s))
                loops["plain"].append(plain_loop_s(out))
                losses["plain"] = out["eval_loss"]

            warmup = args.warmup
        else:
            def ftkit_job():
                r = _run_ftkit(model, train, evals, s, "python", runs_dir)
                loops["ftkit"].append(ftkit_loop_s(r))
                losses["ftkit"] = r["summary"]["metrics"].get("loss")

            def plain_job():
                out = _run_plain_process(plain_argv(model, train, evals, str(work / f"plain-{next(counter)}"), s))
                loops["plain"].append(plain_loop_s(out))
                losses["plain"] = out["eval_loss"]

            warmup = 0
        log(f"mode {mode}:")
        times = alternate({"ftkit": ftkit_job, "plain": plain_job}, args.repeats, warmup=warmup, log=log)
        loops = {k: v[warmup:] for k, v in loops.items()}
        figures[mode] = {"wall": ratio_summary(times["ftkit"]["wall"], times["plain"]["wall"]),
                         "cpu": ratio_summary(times["ftkit"]["cpu"], times["plain"]["cpu"]),
                         "loop": ratio_summary(loops["ftkit"], loops["plain"]),
                         "times": times, "loops": loops, "eval_loss": dict(losses)}
        log(f"final eval loss: ftkit {losses['ftkit']:.5f}, plain {losses['plain']:.5f} (the same work gives the same)")

    def cell(r: dict, bold: bool = False) -> str:
        ratio = f"{r['ratio_median']:.3f}"
        return f"{'**' + ratio + '**' if bold else ratio} ({r['ratio_min']:.3f}-{r['ratio_max']:.3f})"

    rows = []
    for mode, f in figures.items():
        w, c, l = f["wall"], f["cpu"], f["loop"]
        rows.append([mode, f"{w['a_median']:.2f} / {w['b_median']:.2f}", cell(w, True),
                     f"{c['a_median']:.2f} / {c['b_median']:.2f}", cell(c, True),
                     f"{l['a_median']:.2f} / {l['b_median']:.2f}", cell(l), w["rounds"]])
    print(markdown(["mode", "wall s ftkit / plain", "wall ratio (range)", "CPU s ftkit / plain", "CPU ratio (range)",
                    "loop s ftkit / plain", "loop ratio (range)", "rounds"], rows))
    print("\nratios are medians of per-round ftkit / plain; CPU counts this process and its workers (user + "
          "system); the loop is train begin to the last optimizer step (wall)")
    print("final eval loss (same work, same result): " + ", ".join(
        f"{m} ftkit {f['eval_loss']['ftkit']:.5f} / plain {f['eval_loss']['plain']:.5f}" for m, f in figures.items()))
    print(f"goal: ftkit / plain <= {GOAL}: " + ", ".join(
        f"{m} wall {f['wall']['ratio_median']:.3f}, CPU {f['cpu']['ratio_median']:.3f}" for m, f in figures.items()))
    if args.json:
        Path(args.json).write_text(json.dumps({"settings": s, "figures": figures}, indent=2))
    shutil.rmtree(work, ignore_errors=True)  # runs, adapters and data: the figures are printed
    return 0


def _run_ftkit(model, train, evals, s, launcher, runs_dir) -> dict:
    from _common import run_worker

    result = run_worker(ftkit_changes(model, train, evals, s, launcher), runs_dir)
    if result["status"] != "finished":
        raise RuntimeError(f"ftkit run {result['status']}: {result['summary'].get('reason')}")
    return result


def _run_plain_process(argv: list[str]) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    done = subprocess.run([sys.executable, str(PLAIN)] + argv, capture_output=True, text=True, env=env,
                          cwd=str(REPO))
    line = next((l for l in done.stdout.splitlines() if l.startswith("PLAIN_RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"plain script failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(line[len("PLAIN_RESULT "):])


if __name__ == "__main__":
    sys.exit(main())
