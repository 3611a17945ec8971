"""The ``ftkit`` command: train, inspect runs, list methods, tasks and presets.

Every command reads the same ``RunConfig`` as the notebook form; a bad value
ends with the config's own field-named message and exit code 2, never a
traceback.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Optional, Sequence

import yaml

from .errors import ConfigError
from .printer import Printer, _fmt_eta, _table, summary_text  # noqa: F401  (printing lives in ftkit.printer)


# ---- config from the command line -------------------------------------------


def parse_set(items: Sequence[str]) -> dict:
    """``PATH=VALUE`` pairs; values are read as YAML (``8`` -> 8, ``[q,v]`` -> list)."""
    changes = {}
    for item in items:
        path, sep, raw = item.partition("=")
        if not sep or not path:
            raise ConfigError([("--set", f"expected PATH=VALUE, got {item!r}")])
        try:
            changes[path.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            changes[path.strip()] = raw
    return changes


def load_config(args):
    from .config import RunConfig

    if getattr(args, "config", None) and getattr(args, "preset", None):
        raise ConfigError([("--preset", "give a config file or --preset, not both")])
    if getattr(args, "config", None):
        config = RunConfig.from_yaml(args.config)
    else:
        config = RunConfig.preset(getattr(args, "preset", None) or "demo")
    changes = parse_set(getattr(args, "set", None) or [])
    if getattr(args, "runs_dir", None):
        changes["runs_dir"] = args.runs_dir
    return config.update(changes) if changes else config


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="run config YAML (default: the demo preset)")
    p.add_argument("--preset", help="start from a named preset (`ftkit presets`)")
    p.add_argument("--set", action="append", metavar="PATH=VALUE", default=[],
                   help="override one field, e.g. --set method.lora.r=16 (repeatable)")


# ---- commands -------------------------------------------------------------------

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


def cmd_config(args) -> int:
    config = load_config(args)
    if args.json:
        text = config.to_json()
    else:
        text = config.to_yaml() if args.plain else config.annotated_yaml()
    print(text, end="")
    return 0


def cmd_plan(args) -> int:
    from .plan import plan, plan_text

    result = plan(load_config(args))
    print(json.dumps(result, indent=2) if args.json else plan_text(result))
    return 0


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


def cmd_predict(args) -> int:
    from .predict import PredictError, Predictor

    text = sys.stdin.read() if args.text == "-" else args.text
    options = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "seed": args.seed,
               "context": args.context}
    try:
        predictor = Predictor(args.run, runs_dir=args.runs_dir, checkpoint=args.checkpoint)
        result = predictor.predict(text, **{k: v for k, v in options.items() if v is not None})
    except PredictError as exc:
        print(f"ftkit: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"run": predictor.name, "task": predictor.task, **result.to_dict()}, indent=2)
          if args.json else str(result))
    return 0


def cmd_export(args) -> int:
    from .export import ExportError, export

    try:
        result = export(args.run, args.format, args.out, runs_dir=args.runs_dir, tolerance=args.tolerance,
                        quantized_base=args.quantized_base)
    except ExportError as exc:
        print(f"ftkit: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.text())
    return 0


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


def cmd_estimate(args) -> int:
    from .estimator import estimate

    result = estimate(load_config(args), gpus=args.gpus, gpu_memory_gb=args.gpu_memory, device=args.device)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.table())
    return 0


def cmd_advise(args) -> int:
    from .advisor import advise

    result = advise(args.task, args.model, gpus=args.gpus, gpu_memory_gb=args.gpu_memory, device=args.device,
                    seq=args.seq, batch=args.batch)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.text())
    return 0


def _add_estimator_commands(sub) -> None:
    p = sub.add_parser("estimate", help="predict peak memory per GPU, trainable parameters and step time "
                       "from the model's config.json alone")
    _add_config_args(p)
    p.add_argument("--gpus", type=int, default=None, help="GPUs the run spans (default: the config's processes)")
    p.add_argument("--gpu-memory", type=float, default=None, metavar="GIB", help="memory of each GPU in GiB "
                   "(2**30 bytes; an \"80GB\" card: 80; default: the device's)")
    p.add_argument("--device", default="A100-80GB", help="device for throughput and defaults (e.g. H100-80GB, "
                   "RTX-4090, CPU)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_estimate, runs_dir=None)

    p = sub.add_parser("advise", help="rank the fine-tuning configurations that fit a model, task and GPU budget")
    p.add_argument("--task", required=True, help="task name (`ftkit tasks`)")
    p.add_argument("--model", required=True, help="Hub id, folder or builtin:* model")
    p.add_argument("--gpus", type=int, default=1)
    p.add_argument("--gpu-memory", type=float, default=24, metavar="GIB",
                   help="memory of each GPU in GiB (2**30 bytes; an \"80GB\" card: 80)")
    p.add_argument("--device", default=None, help="device for the time estimate (default: one with that memory)")
    p.add_argument("--seq", type=int, default=None, help="tokens per example (default 1024 generative, 256 else)")
    p.add_argument("--batch", type=int, default=4, help="examples per GPU per step")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_advise)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ftkit", description="Fine-tune Hugging Face models with any PEFT method, full fine-tuning or DeepSpeed ZeRO.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

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

    p = sub.add_parser("config", help="print the validated config (YAML) that train would run, each value "
                                      "marked with where it came from")
    _add_config_args(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    p.add_argument("--plain", action="store_true",
                   help="YAML without the comment after each value saying where it came from "
                        "(default, method, preset, user, reset)")
    p.set_defaults(func=cmd_config, runs_dir=None)

    p = sub.add_parser("plan", help="what a config would train, from the model's config.json alone (no weights)")
    _add_config_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plan, runs_dir=None)

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

    p = sub.add_parser("predict", help="run a finished run's model on one input: text, label, entities or answer",
                       description="Generated text (domain, chat, creative, translation), label and probabilities "
                       "(classification), entities with character offsets (ner) or the answer span (qa). "
                       "QA: the question as TEXT and the passage as --context, or TEXT as 'QUESTION ||| CONTEXT'.")
    p.add_argument("run", help="run id (or any unique part of one) or run folder")
    p.add_argument("text", help="the input text ('-' reads it from stdin); for qa the question")
    p.add_argument("--context", help="qa: the passage the answer is found in")
    p.add_argument("--max-new-tokens", type=int, metavar="N", help="generation: tokens to generate "
                   "(default: the task's)")
    p.add_argument("--temperature", type=float, metavar="T", help="generation: sampling temperature, 0 greedy "
                   "(default: the task's)")
    p.add_argument("--seed", type=int, help="generation: seed for sampling (default: the run's)")
    p.add_argument("--checkpoint", metavar="DIR", help="predict from this saved checkpoint folder instead of the "
                   "run's final model (e.g. a stopped or failed run's last checkpoint, `ftkit show RUN`)")
    p.add_argument("--runs-dir")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="write a run's adapter, merged model or ONNX graph, checked against the "
                       "trained model on rows of its own data")
    p.add_argument("run", help="run id (or any unique part of one) or run folder")
    p.add_argument("--format", required=True, choices=["adapter", "merged", "onnx"],
                   help="adapter: peft files + tokenizer + run config; merged: full safetensors weights; "
                   "onnx: the merged model as an ONNX graph checked in onnxruntime")
    p.add_argument("--out", metavar="DIR", help="where to write (default RUN/export/FORMAT)")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest max |difference| of outputs allowed "
                   "between the export and the trained model (float32; default 1e-4)")
    p.add_argument("--quantized-base", choices=["dequantized", "original"], default="dequantized",
                   help="4/8-bit runs: merge onto the quantized base dequantized to float32 (the weights the "
                   "adapter trained against) or onto the original full-precision base")
    p.add_argument("--runs-dir")
    p.add_argument("--json", action="store_true", help="print the result (files, notes, checks) as JSON")
    p.set_defaults(func=cmd_export)

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

    _add_estimator_commands(sub)

    from .handoff._cli import add_command as add_handoff_command

    add_handoff_command(sub)
    from .comparison.cli import add_compare_command

    add_compare_command(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"ftkit: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:  # unknown task/method names from the registries
        print(f"ftkit: {exc.args[0] if exc.args else exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before a run exists (ftkit train handles its own)
        print("\nftkit: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
