"""The form's fields, read from ``RunConfig``'s schema: one ``FieldSpec`` per setting, by dotted path.

A choice section (method, task) is ``name`` plus one options model per registered entry; its ``name``
becomes a dropdown labelled with each entry's title.
"""
from __future__ import annotations

from typing import Any

from ..methods import methods
from ..tasks import tasks
from ._fields import FieldSpec, describe, is_section

REGISTRIES = {"method": methods, "task": tasks}
MISSING = object()


def is_choice(model) -> bool:
    """A section holding ``name`` plus one options sub-section per registered entry."""
    fields = model.model_fields
    return "name" in fields and len(fields) > 1 and all(
        is_section(info.annotation) for key, info in fields.items() if key != "name"
    )


def lookup(data: Any, path: str) -> Any:
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return MISSING
        data = data[key]
    return data


def leaf_paths(data: Any, prefix: str = "") -> list[str]:
    if not isinstance(data, dict):
        return [prefix]
    out = []
    for key, value in data.items():
        out += leaf_paths(value, f"{prefix}{key}" if not prefix else f"{prefix}.{key}")
    return out


def collect(model: Any, prefix: str = "", specs: "dict[str, FieldSpec] | None" = None,
            models: "dict[str, dict] | None" = None) -> tuple[dict[str, FieldSpec], dict[str, dict]]:
    """(path -> FieldSpec, choice section -> {entry: options model}) for ``model`` and its sections."""
    specs = {} if specs is None else specs
    models = {} if models is None else models
    choice = is_choice(model) and prefix
    for name, info in model.model_fields.items():
        path = prefix + name
        if is_section(info.annotation):
            collect(info.annotation, path + ".", specs, models)
            if choice:
                models.setdefault(prefix[:-1], {})[name] = info.annotation
            continue
        spec = describe(path, info)
        if choice and name == "name":
            section = prefix[:-1]
            entries = [k for k in model.model_fields if k != "name"]
            registry = REGISTRIES.get(section)
            spec.kind, spec.choices = "choice", entries
            if registry is not None:
                spec.labels = {e: f"{registry.get(e).title} ({e})" for e in entries if e in registry}
        specs[path] = spec
    return specs, models
