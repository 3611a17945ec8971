"""The ``ftkit`` command: each group of subcommands lives in its own ``cli_*`` module; this one joins them.

Every command reads the same ``RunConfig`` as the notebook form; a bad value
ends with the config's own field-named message and exit code 2, never a
traceback.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from . import cli_catalogue, cli_plan, cli_predict, cli_runs
from .cli_common import load_config, parse_set  # noqa: F401  (also read from here)
from .errors import ConfigError
from .printer import Printer, _fmt_eta, _table, summary_text  # noqa: F401  (printing lives in ftkit.printer)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ftkit", description="Fine-tune Hugging Face models with any PEFT method, full fine-tuning or DeepSpeed ZeRO.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add_commands in (cli_runs.add_commands, cli_plan.add_commands, cli_predict.add_commands,
                         cli_catalogue.add_commands):
        add_commands(sub)

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
