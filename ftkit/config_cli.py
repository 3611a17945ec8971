"""A ``RunConfig`` as the command that trains it: ``ftkit train --preset NAME --set path=value ...``.

The preset is the one needing the fewest ``--set`` changes (or the one named); each change is a field
of the config that differs from the preset, its value written the way ``--set`` reads it (YAML).
Only the chosen entry of a choice section (``method.lora.*`` when the method is LoRA) counts.
"""
from __future__ import annotations

import shlex
from typing import Any, Iterable, Optional

import yaml
from pydantic import BaseModel

from .errors import ConfigError


def flow_yaml(value: Any) -> str:
    """A value as one line of YAML (``[a, b]``, ``{k: v}``)."""
    text = yaml.safe_dump(value, default_flow_style=True, sort_keys=False).strip()
    return text[:-4].strip() if text.endswith("\n...") else text


def cli_value(value: Any) -> str:
    """A value as the CLI's ``--set path=value`` reads it (YAML)."""
    if value is None:
        return "null"
    if isinstance(value, str):
        try:
            same = yaml.safe_load(value) == value
        except yaml.YAMLError:
            same = False
        return value if same and value else flow_yaml(value)
    return flow_yaml(value)


def _is_choice(model: BaseModel) -> bool:
    """A section holding ``name`` plus one options sub-section per registered entry (method, task)."""
    others = [k for k in type(model).model_fields if k != "name"]
    return "name" in type(model).model_fields and bool(others) and all(
        isinstance(getattr(model, k), BaseModel) for k in others)


def leaf_paths(model: BaseModel, prefix: str = "") -> list[str]:
    """Dotted paths of the config's settings, the chosen entry's options only in a choice section."""
    chosen = getattr(model, "name", None) if _is_choice(model) else None
    out = []
    for key in type(model).model_fields:
        value = getattr(model, key)
        path = f"{prefix}{key}"
        if isinstance(value, BaseModel):
            if chosen is None or key == chosen:
                out += leaf_paths(value, path + ".")
        else:
            out.append(path)
    return out


def _lookup(data: Any, path: str) -> Any:
    for key in path.split("."):
        data = data.get(key) if isinstance(data, dict) else None
    return data


def changes(config: Any, base: Any) -> list[str]:
    """``path=value`` for each setting of ``config`` that differs from ``base``."""
    new, old = config.model_dump(mode="json"), base.model_dump(mode="json")
    return [f"{path}={cli_value(_lookup(new, path))}" for path in leaf_paths(config)
            if _lookup(new, path) != _lookup(old, path)]


def cli_args(config: Any, presets: Iterable[str], preset: Optional[str] = None) -> list[str]:
    """The argv of ``ftkit train`` for ``config``: ``preset`` if named, else the one of ``presets`` with
    fewest changes."""
    kind = type(config)
    names = [preset] if preset else list(presets)
    best: Optional[tuple[str, list[str]]] = None
    for name in names:
        try:
            found = changes(config, kind.preset(name))
        except ConfigError:
            continue
        if best is None or len(found) < len(best[1]):
            best = (name, found)
    if best is None:  # no preset loads: every setting that differs from the bare defaults
        return ["ftkit", "train", *[a for c in changes(config, kind()) for a in ("--set", c)]]
    return ["ftkit", "train", "--preset", best[0], *[a for c in best[1] for a in ("--set", c)]]


def shell_line(argv: list[str]) -> str:
    """An argv as one shell line."""
    return " ".join(shlex.quote(a) for a in argv)
