"""The live dashboard's cost: bytes sent per update and kernel CPU per event stay flat over a long run.

    python bench/dashboard.py [--steps 10000] [--every 10] [--train-steps 60] [--rounds 2]

Part 1 feeds ``--steps`` synthetic step events (an eval and samples every 500
steps) into ``ftkit.widgets.Dashboard`` headlessly, drawing after every
``--every`` events (what the 0.25 s throttle gives at 40 steps/s). Every
widget message is captured the way a kernel would send it: ``comm.create_comm``
returns a comm that records each message's JSON payload plus its binary
buffers (Jupyter's headers, a few hundred bytes per message, not counted).
Kernel CPU is ``time.process_time`` around feeding and drawing. Printed
around steps 10, 1,000 and 10,000: bytes per update (mean and max), messages
per update, CPU per event, over the updates ending in the last tenth of the
steps up to that mark (at least two updates' worth: steps 1-10, 901-1,000,
9,001-10,000); ordinary updates only (those with an eval are reported apart).
Flat means the step-10,000 figures match the earlier ones. Part 1 runs once per
plot path (``--plots figurewidget,static``); the static path draws one PNG per
update, every ``--static-every`` events (live, its images are at most one per 2 s).

Part 2 trains a real run in the kernel (tiny Llama, LoRA, a step event every
step) with and without a dashboard attached, alternating, and prints the CPU
the dashboard spent (its drawing thread's ``time.thread_time``) as a share of
the training time, and the with/without ratio of seconds per step.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import command_line, markdown, offline_env, stamp  # noqa: E402


# ---- capturing what the widgets send ------------------------------------------------------------


class Meter:
    """Counts every comm message's payload: JSON ``data`` plus binary buffers."""

    def __init__(self):
        self.lock = threading.Lock()
        self.messages = 0
        self.bytes = 0
        self.by_type: dict[str, int] = {}

    def add(self, msg_type: str, data, buffers) -> None:
        size = len(json.dumps(data, separators=(",", ":"), default=str))
        size += sum(memoryview(b).nbytes for b in buffers or ())
        with self.lock:
            self.messages += 1
            self.bytes += size
            self.by_type[msg_type] = self.by_type.get(msg_type, 0) + size

    def take(self) -> tuple[int, int]:
        """(messages, bytes) since the last call."""
        with self.lock:
            out = self.messages, self.bytes
            self.messages = self.bytes = 0
            return out


def install_meter(meter: Meter) -> None:
    """Every widget comm created from now on reports to ``meter`` (what ipywidgets and anywidget call)."""
    import comm
    from comm.base_comm import BaseComm

    class MeteredComm(BaseComm):
        def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
            meter.add(msg_type, data, buffers)

    comm.create_comm = lambda *args, **kwargs: MeteredComm(*args, **kwargs)


# ---- a run that replays synthetic events ------------------------------------------------------------


class SyntheticRun:
    """What a Dashboard reads from a run: id, config, status, events, summary, subscribe, log_tail."""

    def __init__(self, config):
        self.id = "synthetic-run"
        self.config = config
        self.status = "queued"
        self.events: list[dict] = []
        self.summary = None
        self._subscribers = []

    def subscribe(self, callback):
        self._subscribers.append(callback)
        return lambda: self._subscribers.remove(callback)

    def log_tail(self, n: int = 20) -> list[str]:
        return []

    def emit(self, event: dict) -> None:
        self.events.append(event)
        for callback in list(self._subscribers):
            callback(event)


def step_event(step: int, max_steps: int) -> dict:
    from ftkit.events import make_event

    loss = 2.0 * math.exp(-step / 2000) + 0.05 * math.sin(step)
    return make_event("step", step=step, max_steps=max_steps, epoch=step / max_steps, loss=loss,
                      learning_rate=1e-3 * (1 - step / max_steps), grad_norm=1.0 + 0.1 * math.cos(step),
                      tokens=step * 512, tokens_per_s=5120.0 + step % 13, samples_per_s=160.0, s_per_step=0.1,
                      elapsed=round(step * 0.1, 3), rss_mb=1000.0 + step % 7)


def eval_events(step: int) -> list[dict]:
    from ftkit.events import make_event

    return [make_event("eval", step=step, metrics={"loss": 1.0 + 1 / step, "accuracy": 0.9, "f1": 0.85}),
            make_event("sample", step=step, samples=[{"prompt": f"review {i}", "output": "positive"} for i in range(3)])]


def synthetic(steps: int, every: int, eval_every: int, plots: str = "figurewidget") -> dict:
    """Feed ``steps`` step events; one record per update: last step, messages, bytes, CPU, events, had an eval."""
    from ftkit.config import RunConfig
    from ftkit.events import make_event
    from ftkit.widgets import Dashboard

    meter = Meter()
    install_meter(meter)
    run = SyntheticRun(RunConfig.preset("demo"))
    dash = Dashboard(run, interval=None, plots=plots)
    if plots == "static":
        dash.figure.interval = 0  # one PNG per update here; the live throttle is 1 s between images
    run.emit(make_event("status", status="starting"))
    run.emit(make_event("started", max_steps=steps, start_step=0, world_size=1, device="cpu",
                        trainable_params=73_728, total_params=22_786_432, rss_mb=900.0))
    dash.flush()
    opened = meter.take()
    records = []
    pending: list[dict] = []
    for step in range(1, steps + 1):
        pending.append(step_event(step, steps))
        if eval_every and step % eval_every == 0:
            pending.extend(eval_events(step))
        if step % every == 0 or step == steps:
            t0 = time.process_time()
            for event in pending:
                run.emit(event)
            dash.flush()
            cpu = time.process_time() - t0
            messages, sent = meter.take()
            records.append({"step": step, "messages": messages, "bytes": sent, "cpu_s": cpu,
                            "events": len(pending), "eval": any(e["type"] == "eval" for e in pending)})
            pending = []
    stats = dash.stats
    dash.close()
    return {"records": records, "opened": opened, "points": stats["points"], "updates": stats["updates"]}


def around(records: list[dict], step: int, width: int) -> list[dict]:
    return [r for r in records if step - width < r["step"] <= step and not r["eval"]]


def flatness(result: dict, marks: list[int], every: int) -> list[dict]:
    rows = []
    for mark in marks:
        window = around(result["records"], mark, max(2 * every, mark // 10))
        if not window:
            continue
        events = sum(r["events"] for r in window)
        rows.append({
            "step": mark, "updates": len(window),
            "bytes_mean": statistics.mean(r["bytes"] for r in window),
            "bytes_max": max(r["bytes"] for r in window),
            "messages": statistics.mean(r["messages"] for r in window),
            "cpu_us_per_event": 1e6 * sum(r["cpu_s"] for r in window) / events,
        })
    return rows


# ---- part 2: a real run with and without a dashboard ------------------------------------------------


def real_runs(train_steps: int, rounds: int, log) -> dict:
    from ftkit.config import RunConfig
    from ftkit.controller import Controller
    from ftkit.widgets import Dashboard

    runs_dir = tempfile.mkdtemp(prefix="ftkit-bench-dashboard-")
    controller = Controller(runs_dir=runs_dir)
    config = RunConfig().update({
        "runs_dir": runs_dir, "task.name": "domain", "task.domain.sample_prompts": [], "method.name": "lora",
        "training.max_steps": train_steps, "training.batch_size": 8, "training.max_seq_length": 128,
        "training.logging_steps": 1, "training.eval_steps": 0, "training.learning_rate": 1e-3,
        "data.max_eval_samples": 8, "distributed.launcher": "thread",
    })
    out = {"with": [], "without": [], "ui_cpu_s": [], "train_s": [], "updates": [], "bytes": []}
    opened = {"bytes": 0}

    def one(with_dashboard: bool) -> float:
        meter = Meter()
        install_meter(meter)
        run = controller.start(config)
        ui = {"cpu": 0.0}
        dash = None
        if with_dashboard:
            dash = Dashboard(run, interval=0.25)
            opened["bytes"] = meter.take()[1]  # the widgets' first state and plotly's bundle, sent once
            feed = dash._feed
            draw = feed._handle

            def timed(events):  # the drawing thread's own CPU, whatever else the process does
                t0 = time.thread_time()
                try:
                    draw(events)
                finally:
                    ui["cpu"] += time.thread_time() - t0

            feed._handle = timed
        status = run.wait(1800)
        if status != "finished":
            raise RuntimeError(f"run {status}: {(run.summary or {}).get('reason')}")
        steps = [e for e in run.events if e["type"] == "step"]
        loop = steps[-1]["elapsed"] - steps[0]["elapsed"]  # first to last step: no setup, no eval
        per_step = loop / max(1, steps[-1]["step"] - steps[0]["step"])
        if dash is not None:
            dash.flush()
            time.sleep(0.3)
            out["ui_cpu_s"].append(ui["cpu"])
            out["train_s"].append(steps[-1]["elapsed"])
            out["updates"].append(dash.stats["updates"])
            out["bytes"].append(meter.take()[1])
            out["opened_bytes"] = opened["bytes"]
            dash.close()
        return per_step

    one(False)  # warm-up: imports, the built-in model, the tokenizer
    for i in range(rounds):
        for name, flag in (("with", True), ("without", False)):
            per_step = one(flag)
            out[name].append(per_step)
            log(f"round {i + 1}: {name} dashboard {per_step:.4f} s/step")
    shutil.rmtree(runs_dir, ignore_errors=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000, help="synthetic step events")
    parser.add_argument("--every", type=int, default=10, help="events per update (draw after this many)")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--plots", default="figurewidget,static", help="plot paths to measure, comma-separated")
    parser.add_argument("--static-every", type=int, default=250,
                        help="events per update on the static path (its images are throttled to one per 2 s live)")
    parser.add_argument("--train-steps", type=int, default=60, help="steps of each real run (0: skip part 2)")
    parser.add_argument("--rounds", type=int, default=2, help="with/without rounds of the real run")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (OMP_NUM_THREADS) for the real runs; 1 keeps timings steady on a shared machine")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # before torch loads
    offline_env()
    log = lambda line: print("  " + line, file=sys.stderr, flush=True)  # noqa: E731
    print(stamp(command_line()))

    figures: dict = {}
    for plots in args.plots.split(","):
        every = args.every if plots == "figurewidget" else args.static_every
        print(f"\n### plots={plots}")
        figures[plots] = part1(args, plots, every)
        if plots == "figurewidget":
            figures.update(figures[plots])  # the FigureWidget path's figures stay at the top level too
    if args.train_steps:
        figures.update(part2(args, log))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))
    return 0


def part1(args, plots: str, every: int) -> dict:
    result = synthetic(args.steps, every, args.eval_every, plots)
    marks = [m for m in (10, 1_000, 10_000) if m <= args.steps] or [args.steps]
    rows = flatness(result, marks, every)
    print(f"\n{args.steps:,} synthetic step events, an update every {every} events "
          f"(opening the widgets: {result['opened'][0]} messages, {result['opened'][1]:,} bytes, not counted)")
    print(markdown(["around step", "updates", "bytes / update (mean)", "bytes / update (max)",
                    "messages / update", "kernel CPU / event"],
                   [[f"{r['step']:,}", r["updates"], f"{r['bytes_mean']:,.0f}", f"{r['bytes_max']:,}",
                     f"{r['messages']:.1f}", f"{r['cpu_us_per_event']:.0f} µs"] for r in rows]))
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(f"step {last['step']:,} / step {first['step']:,}: bytes per update x{last['bytes_mean'] / first['bytes_mean']:.2f}, "
              f"CPU per event x{last['cpu_us_per_event'] / first['cpu_us_per_event']:.2f}")
    records = result["records"]
    evals = [r for r in records if r["eval"]]
    overall = max(r["bytes"] for r in records)
    print(f"largest update of the run: {overall:,} bytes; updates with an eval: {len(evals)}, "
          f"mean {statistics.mean(r['bytes'] for r in evals):,.0f} bytes" if evals else
          f"largest update of the run: {overall:,} bytes")
    total_cpu = sum(r["cpu_s"] for r in records)
    total_events = sum(r["events"] for r in records)
    print(f"whole run: {total_cpu:.2f} s kernel CPU for {total_events:,} events "
          f"({1e6 * total_cpu / total_events:.0f} µs per event), points on screen per curve <= "
          f"{max(result['points'].values()):,}")
    return {"flatness": rows, "cpu_us_per_event": 1e6 * total_cpu / total_events}


def part2(args, log) -> dict:
    figures = {}
    if args.train_steps:
        print(f"\nreal in-kernel runs: tiny Llama, LoRA, {args.train_steps} steps, a step event every step, "
              f"dashboard redrawn every 0.25 s at most")
        real = real_runs(args.train_steps, args.rounds, log)
        share = [u / t for u, t in zip(real["ui_cpu_s"], real["train_s"])]
        ratios = [a / b for a, b in zip(real["with"], real["without"])]
        per_step_ui = statistics.median(
            u / args.train_steps for u in real["ui_cpu_s"])
        print(markdown(["", "median", "rounds"], [
            ["s/step without dashboard", f"{statistics.median(real['without']):.4f}", len(real["without"])],
            ["s/step with dashboard", f"{statistics.median(real['with']):.4f}", len(real["with"])],
            ["with / without", f"{statistics.median(ratios):.3f} ({min(ratios):.3f}-{max(ratios):.3f})", len(ratios)],
            ["dashboard CPU per training step", f"{1000 * per_step_ui:.2f} ms", len(share)],
            ["dashboard CPU / training time", f"{100 * statistics.median(share):.2f} %", len(share)],
            ["updates per run", f"{statistics.median(real['updates']):.0f}", len(share)],
            ["bytes sent per run after opening", f"{statistics.median(real['bytes']):,.0f}", len(share)],
            ["bytes sent opening the dashboard", f"{real['opened_bytes']:,.0f}", 1],
        ]))
        figures["real"] = real
    return figures


if __name__ == "__main__":
    sys.exit(main())
