"""Turning validation failures into messages that name the field and the fix."""
from __future__ import annotations

import difflib
from typing import Any, Iterable, Optional

from pydantic import BaseModel, ValidationError


class ConfigError(ValueError):
    """A config that cannot run. ``problems`` holds (field path, message) pairs."""

    def __init__(self, problems: Iterable[tuple[str, str]], source: Optional[str] = None):
        self.problems = list(problems)
        self.source = source
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"invalid config{f' in {self.source}' if self.source else ''}:"
        return "\n".join([head] + [f"  {path}: {msg}" if path else f"  {msg}" for path, msg in self.problems])


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_type_tag(part: Any) -> bool:
    """pydantic puts union members and validator names into ``loc``; they are not fields."""
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool", "list", "dict", "none"})


def _path(loc: tuple) -> str:
    out = ""
    for part in loc:
        if _is_type_tag(part):
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _model_at(root: type[BaseModel], loc: tuple) -> Optional[type[BaseModel]]:
    model: Any = root
    for part in loc:
        if _is_type_tag(part) or isinstance(part, int):
            continue
        info = getattr(model, "model_fields", {}).get(part)
        if info is None:
            return None
        model = info.annotation
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
_KINDS = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "string": "text",
    "list": "a list",
    "dict": "a mapping of key: value",
    "model": "a section (key: value mapping)",
}


def describe(err: dict, root: type[BaseModel]) -> tuple[str, str]:
    """One pydantic error as (dotted path, message with the fix)."""
    loc, kind, ctx, got = tuple(err.get("loc", ())), err["type"], err.get("ctx") or {}, err.get("input")
    path = _path(loc)
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()))
        return path, f"must be {_BOUNDS[kind]} {bound}, got {_show(got)}"
    if kind == "literal_error":
        return path, f"must be one of {ctx.get('expected')}, got {_show(got)}"
    if kind == "extra_forbidden":
        parent = _model_at(root, loc[:-1])
        names = list(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), names, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else (f"; known keys: {', '.join(names)}" if names else "")
        return path, f"unknown key{hint}"
    if kind == "missing":
        return path, "is required"
    if kind.endswith(("too_short", "too_long")):
        return path, err["msg"][0].lower() + err["msg"][1:]
    for prefix, what in _KINDS.items():
        if kind.startswith(prefix + "_"):
            return path, f"must be {what}, got {_show(got)}"
    if kind in ("value_error", "assertion_error"):
        return path, str(ctx.get("error", err["msg"]))
    return path, err["msg"]


def from_validation(exc: ValidationError, root: type[BaseModel], source: Optional[str] = None) -> ConfigError:
    problems: list[tuple[str, str]] = []
    for err in exc.errors():
        path, msg = describe(err, root)
        if not path and err["type"] == "value_error":
            # cross-field rules report several "path: message" lines at once
            for line in msg.splitlines():
                p, _, m = line.partition(": ")
                problems.append((p, m) if m else ("", line))
            continue
        if all(p != path for p, _ in problems):  # union members repeat the same field
            problems.append((path, msg))
    return ConfigError(problems, source)
