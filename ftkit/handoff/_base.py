"""What every hand-off target shares: its spec, the files it builds, presets and errors.

A target is a :class:`TargetSpec`: a few options (a pydantic section, so the
notebook panel and the CLI read the same help, bounds and choices), a pure
``build(config, options) -> Handoff`` and a ``submit(folder, options)`` that
talks to the vendor. Settings a target cannot carry are listed in
``Handoff.notes``; settings that would silently change the run raise
:class:`HandoffError` naming the field and the fix.
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import Any, Callable, Optional, Union

import yaml
from pydantic import ValidationError

from ..errors import ConfigError, from_validation
from ..schema import Options

PRESETS_DIR = Path(__file__).parent / "presets"
FileContent = Union[str, bytes, Path]  # text, raw bytes, or a file/folder to copy


class HandoffError(ConfigError):
    """A run this target cannot carry as it is; ``problems`` name the field and the fix."""

    def __str__(self) -> str:
        return "\n".join(["cannot hand off:"] + [f"  {p}: {m}" if p else f"  {m}" for p, m in self.problems])


class MissingExtra(HandoffError):
    """A vendor SDK is not installed."""

    def __init__(self, module: str, extra: str = "azure"):
        super().__init__([("", f"this needs the Python package {module!r}: pip install 'ftkit[{extra}]'")])
        self.module, self.extra = module, extra


def need(*modules: str, extra: str = "azure") -> None:
    """Raise :class:`MissingExtra` for the first module that is not installed."""
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a parent package is missing
            found = False
        if not found:
            raise MissingExtra(module, extra)


@dataclass
class Handoff:
    """Everything one target needs, as data: ``files`` maps relative paths to their contents."""

    target: str
    files: dict[str, FileContent]
    notes: list[str] = dc_field(default_factory=list)  # ftkit settings the target does not carry
    submit_hint: str = ""  # how to submit the written folder by hand
    main: str = ""  # the file to show first in a preview
    checks: list[str] = dc_field(default_factory=list)  # what was validated, and against what

    def text(self, path: str, limit: Optional[int] = None) -> str:
        """A file's contents as text (a copied file is read; a folder is listed)."""
        value = self.files[path]
        if isinstance(value, Path):
            if value.is_dir():
                return "\n".join(sorted(str(p.relative_to(value)) for p in value.rglob("*") if p.is_file()))
            value = value.read_bytes()
        if isinstance(value, bytes):
            value = value.decode("utf-8", errors="replace")
        return value if limit is None or len(value) <= limit else value[:limit] + "\n..."

    def write(self, out: Union[str, os.PathLike]) -> list[Path]:
        """Write every file under ``out`` (created); returns the paths written."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for rel, value in self.files.items():
            dest = out / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(value, Path):
                if value.is_dir():
                    if dest.exists():
                        shutil.rmtree(dest)
                    shutil.copytree(value, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
                else:
                    shutil.copyfile(value, dest)
            elif isinstance(value, bytes):
                dest.write_bytes(value)
            else:
                dest.write_text(value)
            written.append(dest)
        return written

    def summary(self, out: Union[str, os.PathLike, None] = None) -> str:
        where = f" in {out}" if out else ""
        lines = [f"{self.target}: {len(self.files)} files{where}"]
        lines += [f"  {rel}" for rel in self.files]
        if self.checks:
            lines += ["checked:"] + [f"  {c}" for c in self.checks]
        if self.notes:
            lines += ["not carried:"] + [f"  - {n}" for n in self.notes]
        if self.submit_hint:
            lines += ["submit:"] + [f"  {line}" for line in self.submit_hint.splitlines()]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"target": self.target, "files": list(self.files), "notes": self.notes,
                "checks": self.checks, "submit": self.submit_hint}


@dataclass(frozen=True)
class TargetSpec:
    name: str
    title: str
    summary: str
    kind: str  # "platform" (you bring the compute) or "service" (it fine-tunes for you)
    options: type[Options]
    build: Callable[[Any, Any], Handoff]  # (RunConfig, options) -> Handoff; pure
    submit: Callable[[Path, Any], str]  # (written folder, options) -> what was submitted
    carries: str = ""  # one line: what of a run it carries
    cannot: tuple[str, ...] = ()  # what it cannot carry, as the README states it
    modules: tuple[str, ...] = ()  # SDK modules build needs (from the extra)
    extra: str = "azure"

    def parse_options(self, values: Optional[dict] = None) -> Any:
        """The target's options from plain values; errors name ``<target>.<field>``."""
        try:
            return self.options.model_validate(values or {})
        except ValidationError as exc:
            err = from_validation(exc, self.options)
            raise HandoffError([(f"{self.name}.{p}" if p else self.name, m) for p, m in err.problems]) from None


def build(config, target: str, options: Union[dict, Options, None] = None) -> Handoff:
    """The files ``target`` needs to run ``config`` (pure: nothing is written or sent)."""
    from . import targets

    if target not in targets:
        raise HandoffError([("--target", f"unknown target {target!r}; known: {', '.join(targets.names())}")])
    spec = targets.get(target)
    opts = options if isinstance(options, spec.options) else spec.parse_options(options)
    need(*spec.modules, extra=spec.extra)
    return spec.build(config, opts)


def resolve_config(source: Optional[str], runs_dir: Optional[str] = None):
    """A RunConfig from a YAML/JSON file, a run folder or a run id."""
    from ..config import RunConfig

    if source is None:
        return None
    path = Path(source).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file():
            return RunConfig.from_json(path / "config.json")
        raise HandoffError([("CONFIG_OR_RUN", f"{source!r} is a folder without config.json; give a run folder, "
                                              "a run id or a config YAML")])
    if path.is_file():
        return RunConfig.from_json(path) if path.suffix == ".json" else RunConfig.from_yaml(path)
    from ..store import RunStore

    try:
        record = RunStore(runs_dir).get(source)
    except KeyError:
        raise HandoffError([("CONFIG_OR_RUN", f"{source!r} is neither a config file nor a run (`ftkit runs` lists "
                                              "runs)")]) from None
    return RunConfig.from_json(record.path / "config.json")


# ---- presets ---------------------------------------------------------------------


def list_presets() -> dict[str, str]:
    """Hand-off preset name -> its one-line description (the file's first comment)."""
    from ..config import list_presets as read_presets

    return read_presets(PRESETS_DIR)


def load_preset(name: str, target: Optional[str] = None) -> dict:
    """A preset: ``{"target", "config" (RunConfig), "options" (dict)}``; ``NAME`` or ``TARGET-NAME``."""
    from ..config import RunConfig

    candidates = ([f"{target}-{name}"] if target else []) + [name]
    path = next((PRESETS_DIR / f"{c}.yaml" for c in candidates if (PRESETS_DIR / f"{c}.yaml").is_file()), None)
    if path is None:
        from ..config import list_presets as run_presets

        if name in run_presets() and target:  # a run preset (`ftkit presets`) handed to the target as it is
            return {"target": target, "config": RunConfig.preset(name), "options": {}}
        raise HandoffError([("--preset", f"unknown preset {name!r}; hand-off presets: {', '.join(list_presets())}; "
                                         "run presets (`ftkit presets`) need --target")])
    data = yaml.safe_load(path.read_text()) or {}
    if target and data.get("target") != target:
        raise HandoffError([("--preset", f"{path.stem} is a preset for {data.get('target')}, not {target}")])
    base = data.get("config") or {}
    config = RunConfig.preset(base["preset"]) if "preset" in base else RunConfig.from_dict(base, str(path))
    if data.get("set"):
        config = config.update(data["set"])
    return {"target": data["target"], "config": config, "options": data.get("options") or {}}


# ---- helpers the targets share ---------------------------------------------------------


def local_path(value: Optional[str]) -> Optional[Path]:
    """``value`` as an existing local path, or None (a hub id, a builtin, a URL, empty)."""
    if not value or value == "builtin" or value.startswith("builtin:") or "://" in value:
        return None
    path = Path(value).expanduser()
    return path if path.exists() else None


def dumps_json(data: Any) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (an embedded training_config.yaml, JSONL data) as readable ``|`` blocks."""


def _str(dumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dumps_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)
