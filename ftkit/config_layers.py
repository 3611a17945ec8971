"""Where a config value came from, and the layers that fill what nobody set.

Weakest first: the field's default, the method's usual value, a preset, the user. The helpers here
work on plain nested dicts, before the ``RunConfig`` is validated.
"""
from __future__ import annotations

from typing import Any

from .methods import methods
from .tasks import tasks

#: Where a value came from, weakest first: the field's own default, the method's usual value (its
#: learning rate...), a preset, the user. "reset": a task option that fits only the built-in data,
#: cleared because the run reads the user's own data.
ORIGINS = ("default", "method", "preset", "user", "reset")


def _leaves(data: dict, prefix: str = "") -> dict[str, Any]:
    """Dotted path -> value for every leaf of nested mappings."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_leaves(value, path + "."))
        else:
            out[path] = value
    return out


def _put(data: dict, path: str, value: Any) -> None:
    node = data
    *parents, last = path.split(".")
    for key in parents:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[last] = value


def _is_set(origins: dict[str, str], path: str) -> bool:
    """Whether ``path`` (or a section holding it, or a value under it) was given explicitly."""
    return any(p == path or path.startswith(p + ".") or p.startswith(path + ".") for p in origins)


def _name_in(data: dict, section: str, default: str) -> Any:
    node = data.get(section)
    return node.get("name", default) if isinstance(node, dict) else default


def _unselected(data: dict) -> list[tuple[str, str]]:
    """Options written for a method (or task) that is not the chosen one: they would be ignored."""
    problems = []
    for section, registry, default in (("method", methods, "lora"), ("task", tasks, "classification")):
        node = data.get(section)
        name = _name_in(data, section, default)
        if not isinstance(node, dict) or not isinstance(name, str) or name not in registry:
            continue
        for key, value in node.items():
            if key == "name" or key == name or key not in registry:
                continue
            defaults = registry.get(key).options().model_dump(mode="json")
            if isinstance(value, dict) and all(defaults.get(k, object()) == v for k, v in value.items()):
                continue  # a full dump (every entry at its defaults) says nothing about this run
            problems.append((f"{section}.{key}", f"options for {key}, but {section}.name is {name!r}: they would be "
                                                 f"ignored. Move them under {section}.{name}, or set "
                                                 f"{section}.name: {key}"))
    return problems


def method_dependent() -> set[str]:
    """Config paths whose usual value depends on the method (every spec's training defaults)."""
    return {path for spec in methods for path in spec.training_defaults}


def builtin_only(task_name: str) -> dict[str, Any]:
    """Paths of a task's options that fit only its built-in data -> the value they take with the user's data."""
    if task_name not in tasks:
        return {}
    out = {}
    for fname, info in tasks.get(task_name).options.model_fields.items():
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        if extra.get("builtin_data"):
            default = info.get_default(call_default_factory=True)
            out[f"task.{task_name}.{fname}"] = [] if isinstance(default, list) else None
    return out


def _apply_layers(data: dict, origins: dict[str, str]) -> None:
    """Fill what nobody set with the method's usual values; clear built-in-data options on user data."""
    name = _name_in(data, "method", "lora")
    if isinstance(name, str) and name in methods and all(isinstance(data.get(k, {}), dict) for k in ("training",)):
        for path, value in methods.get(name).training_defaults.items():
            if not _is_set(origins, path):
                _put(data, path, value)
                origins[path] = "method"
    source = data.get("data", {}).get("source", "builtin") if isinstance(data.get("data", {}), dict) else "builtin"
    task = _name_in(data, "task", "classification")
    if source != "builtin" and isinstance(task, str) and isinstance(data.get("task", {}), dict):
        for path, neutral in builtin_only(task).items():
            if origins.get(path) != "user":
                _put(data, path, neutral)
                origins[path] = "reset"
