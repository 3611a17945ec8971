"""What every ``ftkit`` command that reads a config shares: the config from a file, a preset and ``--set``."""
from __future__ import annotations

import argparse
from typing import Sequence

import yaml

from .errors import ConfigError


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
