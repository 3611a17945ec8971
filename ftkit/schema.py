"""Building blocks for typed, self-describing config sections.

Every field carries its help text, default and bounds or choices as pydantic
metadata; the notebook form, the CLI and the error messages all read them
from here, so a field is described exactly once.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Section(BaseModel):
    """A config section: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())


class Options(Section):
    """Options of one method or task. Field names follow the library they feed."""


def field(default: Any = ..., help: str = "", *, advanced: bool = False, factory: Any = None, **bounds: Any) -> Any:
    """A config field with help text; ``bounds`` are pydantic's ge/le/gt/lt/min_length...

    ``advanced`` fields are folded away in the notebook form; ``factory`` makes
    mutable defaults (lists, dicts, nested sections).
    """
    extra = {"advanced": True} if advanced else None
    if factory is not None:
        return Field(default_factory=factory, description=help, json_schema_extra=extra, **bounds)
    return Field(default, description=help, json_schema_extra=extra, **bounds)
