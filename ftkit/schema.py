"""Building blocks for typed, self-describing config sections.

Every field carries its help text, default and bounds or choices as pydantic
metadata; the notebook form, the CLI and the error messages all read them
from here, so a field is described exactly once.
"""
from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator


def _numeric(annotation: Any) -> tuple[bool, bool]:
    """(takes a number, takes only whole numbers) for a field annotation; bools are not numbers."""
    args = typing.get_args(annotation)
    kinds = {annotation} if not args or typing.get_origin(annotation) is typing.Literal else set(args)
    if typing.get_origin(annotation) is typing.Literal:
        return False, False
    takes_int, takes_float = int in kinds, float in kinds
    return takes_int or takes_float, takes_int and not takes_float


def _number_text(text: str) -> Any:
    """``1e3``, ``2e-5``, ``1_000`` as YAML 1.1 leaves them (strings) -> a number, else None."""
    try:
        value = float(text.strip().replace("_", ""))
    except ValueError:
        return None
    return int(value) if value.is_integer() and "." not in text and "e" not in text.lower() else value


class Section(BaseModel):
    """A config section: unknown keys are errors, values are checked on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    @field_validator("*", mode="before")
    @classmethod
    def _numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """Booleans are not numbers; numbers written as text (``1e3``) read like numbers, whole or not."""
        fld = cls.model_fields.get(info.field_name) if info.field_name else None
        if fld is None:
            return value
        numeric, whole = _numeric(fld.annotation)
        if not numeric:
            return value
        if isinstance(value, bool):
            raise ValueError(f"must be {'a whole number' if whole else 'a number'}, got {str(value).lower()} "
                             "(a yes/no value)")
        if isinstance(value, str):
            number = _number_text(value)
            if number is not None:
                value = number
        if whole and isinstance(value, float) and value.is_integer():
            return int(value)
        return value


class Options(Section):
    """Options of one method or task. Field names follow the library they feed."""


def field(default: Any = ..., help: str = "", *, advanced: bool = False, factory: Any = None,
          builtin_data: bool = False, **bounds: Any) -> Any:
    """A config field with help text; ``bounds`` are pydantic's ge/le/gt/lt/min_length...

    ``advanced`` fields are folded away in the notebook form; ``factory`` makes
    mutable defaults (lists, dicts, nested sections). ``builtin_data`` marks a task
    option that fits only the task's built-in data (its sample prompts, say): it is
    cleared when the run reads the user's own data, unless the user set it.
    """
    extra = {k: True for k, on in (("advanced", advanced), ("builtin_data", builtin_data)) if on} or None
    if factory is not None:
        return Field(default_factory=factory, description=help, json_schema_extra=extra, **bounds)
    return Field(default, description=help, json_schema_extra=extra, **bounds)
