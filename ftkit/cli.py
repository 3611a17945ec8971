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


# ---- printing -----------------------------------------------------------------


def _fmt_eta(seconds: Optional[float]) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "--:--"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60:02d}:{seconds % 60:02d}"


class Printer:
    """Turns events into a progress bar and lines on a terminal (plain lines when piped)."""

    def __init__(self, stream=None, width: int = 24):
        self.out = stream or sys.stdout
        self.tty = self.out.isatty()
        self.width = width
        self._bar_open = False

    def _line(self, text: str) -> None:
        if self._bar_open:
            self.out.write("\n")
            self._bar_open = False
        self.out.write(text + "\n")
        self.out.flush()

    def __call__(self, e: dict) -> None:
        kind = e["type"]
        if kind == "started":
            pct = 100 * e["trainable_params"] / max(e["total_params"], 1)
            self._line(f"training {e['method']} on {e['task']} ({e['model']}, {e['device']}): "
                       f"{e['trainable_params']:,} of {e['total_params']:,} parameters ({pct:.3f} %), "
                       f"{e['max_steps']} steps")
        elif kind == "step":
            step, total = e["step"], max(e.get("max_steps") or 1, 1)
            filled = int(self.width * step / total)
            bar = "█" * filled + "·" * (self.width - filled)
            s_per_step = e.get("s_per_step")
            eta = (total - step) * s_per_step if s_per_step else None
            text = (f"step {step:>5}/{total} {bar} loss {e['loss']:.4f}  lr {e.get('learning_rate') or 0:.2e}  "
                    f"{e.get('tokens_per_s') or 0:,.0f} tok/s  {e.get('rss_mb', 0):,.0f} MB  eta {_fmt_eta(eta)}")
            if self.tty:
                self.out.write("\r" + text)
                self._bar_open = True
                self.out.flush()
            else:
                self._line(text)
        elif kind == "eval":
            metrics = "  ".join(f"{k} {v:.4g}" for k, v in e["metrics"].items() if isinstance(v, (int, float)))
            self._line(f"eval @ {e['step']}: {metrics}")
        elif kind == "sample":
            for s in e["samples"][:2]:
                self._line(f"  sample: {s['prompt']!r} -> {s['output']!r}")
        elif kind == "checkpoint":
            self._line(f"checkpoint @ {e['step']}: {e['path']}")
        elif kind == "log" and e.get("level") == "error":
            self._line(e["message"].rstrip().splitlines()[-1])
        elif kind == "status" and e["status"] in ("paused", "stopping"):
            self._line(f"{e['status']} at step {e.get('step')}")
        elif kind == "ended":
            self._line(summary_text(e["summary"]))


def summary_text(s: dict) -> str:
    lines = [f"run {s['run_id']}: {s['status']}" + (f" ({s['reason']})" if s.get("reason") else "")]
    if s.get("loss_first") is not None:
        lines.append(f"  loss {s['loss_first']:.4f} -> {s['loss_last']:.4f} over {s['steps']} steps "
                     f"({s.get('s_per_step') or 0:.3f} s/step, {s.get('tokens_per_s') or 0:,.0f} tok/s)")
    metrics = {k: v for k, v in (s.get("metrics") or {}).items() if isinstance(v, (int, float))}
    if metrics:
        lines.append("  eval " + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    if s.get("trainable_params"):
        lines.append(f"  trainable {s['trainable_params']:,} of {s['total_params']:,} ({s['trainable_pct']} %), "
                     f"peak memory {s.get('peak_cuda_mb') or s.get('peak_rss_mb') or 0:,.0f} MB")
    if s.get("final_dir"):
        lines.append(f"  saved to {s['final_dir']}")
    return "\n".join(lines)


def _table(rows: list[dict], columns: Sequence[str]) -> str:
    if not rows:
        return "(none)"
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    head = "  ".join(c.ljust(widths[c]) for c in columns)
    body = ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join([head] + body)


# ---- commands -------------------------------------------------------------------


def cmd_train(args) -> int:
    from .controller import Controller

    config = load_config(args)
    controller = Controller(runs_dir=config.runs_dir)
    run = controller.start(config)
    printer = Printer()
    if not args.quiet:
        run.subscribe(printer)
    print(f"run {run.id} in {run.path}")
    try:
        run.wait()
    except KeyboardInterrupt:
        print("\nstopping after this step (Ctrl-C again to abandon)...")
        run.stop()
        run.wait()
    time.sleep(0.05)  # let the last event reach the printer
    summary = run.summary or {}
    if args.quiet:
        print(summary_text(summary))
    return 0 if summary.get("status") in ("finished", "stopped") else 1


def cmd_config(args) -> int:
    config = load_config(args)
    print(config.to_json() if args.json else config.to_yaml(), end="")
    return 0


def cmd_plan(args) -> int:
    from .plan import plan, plan_text

    result = plan(load_config(args))
    print(json.dumps(result, indent=2) if args.json else plan_text(result))
    return 0


def _run_rows(runs_dir: Optional[str]) -> list[dict]:
    from .store import RunStore

    rows = []
    for record in RunStore(runs_dir).runs():
        summary = record.summary or {}
        config = record.config_dict()
        best = summary.get("best") or {}
        rows.append({
            "id": record.id,
            "status": record.status,
            "method": config["method"]["name"],
            "task": config["task"]["name"],
            "steps": summary.get("steps", ""),
            "best": f"{best['metric']} {best['value']:.4g}" if best else "",
            "path": str(record.path),
        })
    return rows


def cmd_runs(args) -> int:
    rows = _run_rows(args.runs_dir)
    print(json.dumps(rows, indent=2) if args.json else _table(rows, ["id", "status", "method", "task", "steps", "best"]))
    return 0


def cmd_show(args) -> int:
    from .store import RunStore

    try:
        record = RunStore(args.runs_dir).get(args.run)
    except KeyError as exc:
        print(f"ftkit: {exc.args[0]}", file=sys.stderr)
        return 2
    summary = record.summary
    if args.json:
        print(json.dumps({"id": record.id, "path": str(record.path), "status": record.status,
                          "config": record.config_dict(), "summary": summary,
                          "checkpoints": [str(p) for p in record.checkpoints()]}, indent=2))
        return 0
    print(f"run {record.id} ({record.status}) in {record.path}")
    config = record.config_dict()
    print(f"  {config['method']['name']} on {config['task']['name']}, model {config['model']['name_or_path']}")
    if summary:
        print(summary_text(summary))
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
        predictor = Predictor(args.run, runs_dir=args.runs_dir)
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
    p.add_argument("--gpu-memory", type=float, default=None, metavar="GB", help="memory of each GPU in GB "
                   "(default: the device's)")
    p.add_argument("--device", default="A100-80GB", help="device for throughput and defaults (e.g. H100-80GB, "
                   "RTX-4090, CPU)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_estimate, runs_dir=None)

    p = sub.add_parser("advise", help="rank the fine-tuning configurations that fit a model, task and GPU budget")
    p.add_argument("--task", required=True, help="task name (`ftkit tasks`)")
    p.add_argument("--model", required=True, help="Hub id, folder or builtin:* model")
    p.add_argument("--gpus", type=int, default=1)
    p.add_argument("--gpu-memory", type=float, default=24, metavar="GB", help="memory of each GPU in GB")
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

    p = sub.add_parser("config", help="print the validated config (YAML) that train would run")
    _add_config_args(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    p.set_defaults(func=cmd_config, runs_dir=None)

    p = sub.add_parser("plan", help="what a config would train, from the model's config.json alone (no weights)")
    _add_config_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plan, runs_dir=None)

    p = sub.add_parser("runs", help="list runs on disk")
    p.add_argument("--runs-dir")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_runs)

    p = sub.add_parser("show", help="show one run: config, summary, checkpoints")
    p.add_argument("run", help="run id (or a unique prefix/suffix)")
    p.add_argument("--runs-dir")
    p.add_argument("--events", type=int, default=0, metavar="N", help="also print the last N events")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("predict", help="run a finished run's model on one input: text, label, entities or answer",
                       description="Generated text (domain, chat, creative, translation), label and probabilities "
                       "(classification), entities with character offsets (ner) or the answer span (qa). "
                       "QA: the question as TEXT and the passage as --context, or TEXT as 'QUESTION ||| CONTEXT'.")
    p.add_argument("run", help="run id (or a unique prefix/suffix) or run folder")
    p.add_argument("text", help="the input text ('-' reads it from stdin); for qa the question")
    p.add_argument("--context", help="qa: the passage the answer is found in")
    p.add_argument("--max-new-tokens", type=int, metavar="N", help="generation: tokens to generate "
                   "(default: the task's)")
    p.add_argument("--temperature", type=float, metavar="T", help="generation: sampling temperature, 0 greedy "
                   "(default: the task's)")
    p.add_argument("--seed", type=int, help="generation: seed for sampling (default: the run's)")
    p.add_argument("--runs-dir")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="write a run's adapter, merged model or ONNX graph, checked against the "
                       "trained model on rows of its own data")
    p.add_argument("run", help="run id (or a unique prefix/suffix) or run folder")
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


if __name__ == "__main__":
    sys.exit(main())
