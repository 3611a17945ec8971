"""Training and the runs on disk: ``train``, ``join``, ``runs``, ``show``."""
from __future__ import annotations

import json
import sys
import time
from typing import Optional

from .cli_common import _add_config_args, load_config
from .printer import Printer, _table, summary_text

def cmd_train(args) -> int:
    import os

    from .controller import Controller
    from .interrupts import watch

    config = load_config(args)
    controller = Controller(runs_dir=config.runs_dir)
    run = controller.start(config)
    printer = Printer()
    if not args.quiet:
        run.subscribe(printer)
    print(f"run {run.id} in {run.path}", flush=True)
    for line in launch_join(run):
        print(f"waiting for the other machines: on each, paste: {line}", flush=True)
    abandoned = watch(run)
    if abandoned is not None:
        sys.stdout.flush()
        sys.stderr.flush()
        # the training thread of an in-process run cannot be joined: leave without unwinding it
        # (an interpreter shutdown under a running torch thread aborts)
        os._exit(abandoned)
    time.sleep(0.05)  # let the last event reach the printer
    summary = run.summary or {}
    if args.quiet or not printer.ended:
        print(summary_text(summary or {"run_id": run.id, "status": run.status}))
    return 0 if summary.get("status") in ("finished", "stopped") else 1


def launch_join(run) -> list[str]:
    from .launch import join_commands

    return join_commands(run.config, run.path)


def cmd_join(args) -> int:
    """Join this machine to a multi-node torchrun run started on node 0 (its folder on shared storage)."""
    import os
    import subprocess
    from pathlib import Path

    from . import launch
    from .config import RunConfig

    run_dir = Path(args.run).expanduser()
    if not (run_dir / "config.json").is_file():
        try:
            run_dir = _find(args.runs_dir, args.run).path
        except KeyError as exc:
            print(f"ftkit: {exc.args[0]} (give the run folder on storage this machine shares with node 0)",
                  file=sys.stderr)
            return 2
    config = RunConfig.from_json(run_dir / "config.json")
    d = config.distributed
    if config.launcher != "torchrun" or d.num_nodes < 2:
        print(f"ftkit: run {run_dir.name} is not a multi-node torchrun run (distributed.launcher "
              f"{config.launcher}, num_nodes {d.num_nodes}): nothing to join", file=sys.stderr)
        return 2
    config = config.update({"distributed.node_rank": args.node_rank})
    argv, env = launch.command(config, run_dir, cuda=launch.has_cuda(), cpus=os.cpu_count(), base_env=os.environ)
    logs = run_dir / "logs"
    logs.mkdir(exist_ok=True)
    print(f"joining run {run_dir.name} as node {args.node_rank} of {d.num_nodes} at {d.master_addr}:{d.master_port} "
          f"(log: {logs / f'node-{args.node_rank}.log'})", flush=True)
    with open(logs / f"node-{args.node_rank}.log", "ab") as out:
        proc = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              cwd=str(run_dir))
    tail = (logs / f"node-{args.node_rank}.log").read_text(errors="replace").splitlines()
    reason = launch.rendezvous_timeout_reason(config, run_dir, tail)
    if proc.returncode:
        print(f"ftkit: node {args.node_rank} ended with exit code {proc.returncode}"
              + (f": {reason}" if reason else ""), file=sys.stderr)
    else:
        print(f"node {args.node_rank} done", flush=True)
    return 0 if proc.returncode == 0 else 1


def _records(runs_dir: Optional[str]) -> list:
    """Every run in the store, a run whose process died closed first (as ``failed``, with the reason)."""
    from .records import close_if_dead
    from .store import RunStore

    out = []
    for record in RunStore(runs_dir).runs():
        close_if_dead(record)
        out.append(record)
    return out


def _eval_text(metrics: dict, metric: Optional[str]) -> str:
    value = metrics.get(metric) if metric else None
    return f"{metric} {value:.4g}" if isinstance(value, (int, float)) else ""


def _run_row(record) -> dict:
    from .runstate import read_summary

    summary = read_summary(record.summary) or {}
    config = record.config_dict()
    state = record.state() if not summary else None
    best = summary.get("best") if summary else (state.best if state else None)
    metrics = summary.get("metrics") if summary else state.metrics
    metric = (best or {}).get("metric") or (state.metric if state else None)
    if metric is None:
        from .runstate import for_config

        try:
            metric = for_config(record.config).get("metric")
        except Exception:
            metric = None
    return {
        "id": record.id,
        "status": record.status,
        "method": config["method"]["name"],
        "task": config["task"]["name"],
        "steps": summary.get("steps", "") if summary else state.step,
        "best": f"{best['metric']} {best['value']:.4g} @ {best.get('step')}" if best else "",
        "final": _eval_text(metrics or {}, metric),
        "reason": summary.get("reason") if summary else None,
        "path": str(record.path),
    }


def _run_rows(runs_dir: Optional[str]) -> list[dict]:
    return [_run_row(record) for record in _records(runs_dir)]


def cmd_runs(args) -> int:
    rows = _run_rows(args.runs_dir)
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(_table(rows, ["id", "status", "method", "task", "steps", "best", "final"],
                     {"best": "best eval (@ step)", "final": "saved model's eval"}))
    return 0


def _find(runs_dir: Optional[str], run_id: str):
    from .records import close_if_dead
    from .store import RunStore

    record = RunStore(runs_dir).get(run_id)
    close_if_dead(record)
    return record


def cmd_show(args) -> int:
    import yaml as _yaml

    try:
        record = _find(args.runs_dir, args.run)
    except KeyError as exc:
        print(f"ftkit: {exc.args[0]}", file=sys.stderr)
        return 2
    summary = record.summary
    try:
        config = record.config_dict()
    except (OSError, ValueError):
        config = {}
    if args.json:
        print(json.dumps({"id": record.id, "path": str(record.path), "status": record.status,
                          "config": config, "summary": summary,
                          "checkpoints": [str(p) for p in record.checkpoints()]}, indent=2))
        return 0
    print(f"run {record.id} ({record.status}) in {record.path}")
    print("config:")
    config_yaml = record.path / "config.yaml"
    text = config_yaml.read_text() if config_yaml.is_file() else _yaml.safe_dump(config, sort_keys=False)
    print("  " + text.rstrip().replace("\n", "\n  "))
    print(summary_text(summary) if summary else f"run {record.id}: {record.status} (no summary yet)")
    for path in record.checkpoints():
        print(f"  checkpoint {path}")
    if args.events:
        for event in record.events()[-args.events:]:
            print(json.dumps(event))
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("train", help="train a run from a config file or preset")
    _add_config_args(p)
    p.add_argument("--runs-dir", help="where runs are stored (default $FTKIT_RUNS_DIR or ./runs)")
    p.add_argument("--quiet", action="store_true", help="print only the final summary")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("join", help="join this machine to a multi-node torchrun run that node 0 started "
                                    "(node 0 prints this command)")
    p.add_argument("run", help="the run's folder (on storage shared with node 0) or its id")
    p.add_argument("--node-rank", type=int, required=True, help="this machine's index, 1 .. num_nodes-1")
    p.add_argument("--runs-dir", help="where runs are stored (default $FTKIT_RUNS_DIR or ./runs)")
    p.set_defaults(func=cmd_join)

    p = sub.add_parser("runs", help="list runs on disk (a run whose process died is closed as failed); "
                       "'best eval' is the best evaluation during training, 'saved model's eval' the last one")
    p.add_argument("--runs-dir")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("show", help="show one run: config, summary, checkpoints")
    p.add_argument("run", help="run id (or any unique part of one)")
    p.add_argument("--runs-dir")
    p.add_argument("--events", type=int, default=0, metavar="N", help="also print the last N events")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)
