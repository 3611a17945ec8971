"""``ftkit compare CONFIG --methods lora,dora,ia3 --seeds K --budget "200 steps"``: a study from the command line.

Prints the plan, one line per finished run, then the verdict and the per-method table; ``--csv`` and
``--html`` write the same results as files.
"""
from __future__ import annotations

import argparse
import sys
import time


def add_compare_command(sub) -> None:
    from ..cli_common import _add_config_args

    p = sub.add_parser("compare", help="compare methods over seeds under one budget, with a verdict and its "
                       "uncertainty")
    _add_config_args(p)
    p.add_argument("--methods", default="lora,dora,ia3", help="comma-separated methods (`ftkit methods`)")
    p.add_argument("--seeds", type=int, default=None, metavar="K", help="seeds per method (default: as many as fit "
                   "--time-budget)")
    p.add_argument("--budget", default=None, help="the same for every method: '200 steps', '2e5 tokens', '90s' or "
                   "'1e15 flops' (default: the config's max_steps)")
    p.add_argument("--time-budget", default="10 min", help="wall time the whole comparison should fit, for the "
                   "default --seeds and --search (e.g. '10 min', '600s')")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--search", dest="search", action="store_true", default=None,
                       help="search each method's learning rate on held-out training rows first")
    group.add_argument("--no-search", dest="search", action="store_false",
                       help="use the config's learning rate for every method")
    p.add_argument("--device", default="CPU", help="device the time and FLOPs estimates assume (e.g. CPU, H100-80GB)")
    p.add_argument("--runs-dir", help="where runs are stored (default $FTKIT_RUNS_DIR or ./runs)")
    p.add_argument("--csv", metavar="PATH", help="also write the results as CSV")
    p.add_argument("--html", metavar="PATH", help="also write an offline HTML report")
    p.set_defaults(func=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    from ..cli_common import load_config
    from ..controller import Controller
    from .plan import Budget
    from .study import Study

    config = load_config(args)
    time_budget = Budget.parse(args.time_budget)
    seconds = time_budget.amount if time_budget.kind == "seconds" else float(time_budget.amount)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]

    def printed(run, entry) -> None:
        run.subscribe(lambda e: _line(entry, e) if e.get("type") == "ended" else None)

    study = Study(config, methods, seeds=args.seeds, budget=args.budget, search=args.search, time_budget_s=seconds,
                  controller=Controller(args.runs_dir), device=args.device, on_run=printed)
    for note in study.notes:
        print(f"note: {note}")
    print(f"comparing {', '.join(study.configs)} over {len(study.seeds)} seed(s) "
          f"({', '.join(map(str, study.seeds))}), {study.budget.describe()} each"
          + (", learning rates searched first" if study.search else ""), flush=True)
    start = time.time()
    study.run()
    print()
    print(study.text())
    print(f"\nwall time: {time.time() - start:.0f} s for {len(study.entries)} runs")
    if args.csv:
        print(f"wrote {study.to_csv(args.csv)}")
    if args.html:
        print(f"wrote {study.to_html(args.html)}")
    failed = [e for e in study.entries if e["phase"] == "final" and e["run"].status == "failed"]
    return 1 if failed else 0


def _line(entry: dict, event: dict) -> None:
    s = event.get("summary") or {}
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in (s.get("metrics") or {}).items() if isinstance(v, float))
    print(f"  {entry['phase']:<6} {entry['arm']:<12} seed {entry['seed']:<4} lr {entry['lr']:<8.2g} "
          f"{event.get('status', '?'):<8} {metrics}", file=sys.stdout, flush=True)
