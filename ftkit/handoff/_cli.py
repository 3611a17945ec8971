"""``ftkit handoff CONFIG_OR_RUN --target azureml|foundry|kaito [--out DIR] [--submit]``."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def add_command(sub) -> None:
    """Register ``handoff`` on the ``ftkit`` parser's subcommands."""
    from . import targets

    p = sub.add_parser(
        "handoff", help="write what Azure ML, AI Foundry or Kaito needs to run a config or run there",
        description="Writes every file the target needs into a folder, says which settings it does not carry, "
                    "and prints how to submit. --submit sends it (credentials needed).")
    p.add_argument("source", nargs="?", metavar="CONFIG_OR_RUN", help="run config YAML/JSON, run id or run folder")
    p.add_argument("--target", choices=targets.names(), help="where the run goes (a --preset names its own)")
    p.add_argument("--preset", help="a hand-off preset (`ftkit handoff --list`), e.g. phi3-mini with --target foundry")
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", help="override a run config field")
    p.add_argument("--opt", action="append", default=[], metavar="KEY=VALUE",
                   help="a target option, e.g. --opt compute=gpu-cluster (repeatable; `--list` shows them)")
    p.add_argument("--out", metavar="DIR", help="folder to write (default RUN/handoff/TARGET or ./handoff/TARGET)")
    p.add_argument("--submit", action="store_true", help="also submit it (needs the vendor's credentials)")
    p.add_argument("--list", action="store_true", help="list targets, their options and the presets")
    p.add_argument("--runs-dir")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_handoff)


def _listing() -> str:
    from . import list_presets, targets

    lines = []
    for spec in targets:
        lines.append(f"{spec.name}: {spec.title} ({spec.kind}) - {spec.summary}")
        lines.append(f"  carries: {spec.carries}")
        lines += [f"  cannot: {c}" for c in spec.cannot]
        for key, info in spec.options.model_fields.items():
            lines.append(f"  --opt {key}=...  {info.description}")
    lines.append("presets:")
    lines += [f"  {name}: {text}" for name, text in list_presets().items()]
    return "\n".join(lines)


def cmd_handoff(args) -> int:
    from ..cli_common import parse_set
    from . import HandoffError, build, load_preset, resolve_config, targets

    if args.list:
        print(_listing())
        return 0
    options, config = {}, None
    if args.preset:
        preset = load_preset(args.preset, args.target)
        args.target = args.target or preset["target"]
        config, options = preset["config"], dict(preset["options"])
    if not args.target:
        raise HandoffError([("--target", f"say where the run goes: --target {'|'.join(targets.names())}")])
    if args.source:
        config = resolve_config(args.source, args.runs_dir)
    if config is None:
        raise HandoffError([("CONFIG_OR_RUN", "give a config file, a run id or --preset")])
    changes = parse_set(args.set)
    if changes:
        config = config.update(changes)
    options.update(parse_set(args.opt))
    spec = targets.get(args.target)
    opts = spec.parse_options(options)
    handoff = build(config, args.target, opts)
    out = Path(args.out) if args.out else _default_out(args, spec.name)
    handoff.write(out)
    if args.json:
        print(json.dumps({**handoff.to_dict(), "out": str(out)}, indent=2))
    else:
        print(handoff.summary(out))
    if args.submit:
        try:
            print(spec.submit(out, opts))
        except HandoffError as exc:
            print(f"ftkit: not submitted: {exc}", file=sys.stderr)
            return 1
    return 0


def _default_out(args, target: str) -> Path:
    source = args.source
    if source and Path(source).is_dir():
        return Path(source) / "handoff" / target
    if source and not Path(source).is_file():  # a run id
        from ..store import RunStore

        try:
            return RunStore(args.runs_dir).get(source).path / "handoff" / target
        except KeyError:
            pass
    return Path("handoff") / target


def main(argv=None) -> int:
    """``python -m ftkit.handoff._cli ...`` (the same as ``ftkit handoff ...``)."""
    from ..cli import main as ftkit_main

    return ftkit_main(["handoff", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
