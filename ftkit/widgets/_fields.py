"""One input widget per config field, chosen from the field's type and metadata.

``Literal`` -> dropdown, ``bool`` -> checkbox, ``int``/``float`` -> number
box, ``Optional`` scalars -> text that may stay empty, lists and mappings ->
text parsed as YAML. Bounds are not enforced by the widget (that would clamp
silently): the config's validator judges every value and the form shows its
message under the field.
"""
from __future__ import annotations

import html
import types
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Optional, Union, get_args, get_origin

import ipywidgets as widgets
import yaml
from pydantic import BaseModel

from ..config_cli import flow_yaml

EMPTY = "(empty)"  # dropdown value standing for None (a real None would mean "nothing selected")
_BOUND_SIGNS = (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"), ("min_length", "length >="), ("max_length", "length <="))


@dataclass
class FieldSpec:
    """What the form needs to know about one leaf field."""

    path: str
    name: str
    kind: str  # choice | bool | int | float | text | yaml | multi
    help: str = ""
    optional: bool = False
    choices: list = field(default_factory=list)
    labels: dict = field(default_factory=dict)  # choice value -> shown label
    advanced: bool = False
    default: Any = None
    bounds: str = ""
    number: Optional[type] = None  # int/float for optional numbers typed as text


def is_section(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    if get_origin(annotation) in (Union, types.UnionType):
        args = get_args(annotation)
        rest = [a for a in args if a is not type(None)]
        if len(rest) < len(args):
            return (rest[0] if len(rest) == 1 else Union[tuple(rest)]), True
    return annotation, False


def _bounds(info) -> str:
    parts = []
    for meta in info.metadata:
        for attr, sign in _BOUND_SIGNS:
            value = getattr(meta, attr, None)
            if value is not None:
                parts.append(f"{sign} {value}")
    return ", ".join(parts)


def describe(path: str, info) -> FieldSpec:
    """A ``FieldSpec`` from a pydantic ``FieldInfo``."""
    annotation, optional = _strip_optional(info.annotation)
    origin, args = get_origin(annotation), get_args(annotation)
    choices: list = []
    number = annotation if annotation in (int, float) else None
    if origin is Literal:
        kind, choices = "choice", list(args)
    elif annotation is bool:
        kind = "bool"
    elif annotation is int:
        kind = "text" if optional else "int"
    elif annotation is float:
        kind = "text" if optional else "float"
    elif annotation is str:
        kind = "text"
    elif origin is list and args and get_origin(args[0]) is Literal:
        kind, choices = "multi", list(get_args(args[0]))
    else:
        kind = "yaml"
    extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
    return FieldSpec(
        path=path,
        name=path.rsplit(".", 1)[-1],
        kind=kind,
        help=info.description or "",
        optional=optional,
        choices=choices,
        advanced=bool(extra.get("advanced")),
        default=info.get_default(call_default_factory=True),
        bounds=_bounds(info),
        number=number,
    )


class FieldWidget:
    """The input, help text and inline error of one field."""

    def __init__(self, spec: FieldSpec, on_change: Callable[["FieldWidget"], None]):
        self.spec = spec
        self._on_change = on_change
        self._setting = False
        self.input = self._make_input()
        tip = spec.help + (f" ({spec.bounds})" if spec.bounds else "")
        self.input.tooltip = tip
        self.help = widgets.HTML(
            f"<span style='color:#666;font-size:0.85em' title='{html.escape(tip, quote=True)}'>"
            f"{html.escape(spec.help)}</span>",
            layout=widgets.Layout(flex="1 1 auto", min_width="120px"),
        )
        self.error = widgets.HTML("", layout=widgets.Layout(display="none", margin="0 0 0 180px"))
        self.error.add_class("ftkit-error")
        row = widgets.HBox([self.input, self.help], layout=widgets.Layout(align_items="center"))
        self.box = widgets.VBox([row, self.error])
        self.box.add_class("ftkit-field")
        self.box.add_class("ftkit-field-" + spec.path.replace(".", "-").replace("_", "-"))
        self.message: Optional[str] = None
        self.input.observe(self._changed, "value")

    def _make_input(self) -> widgets.Widget:
        s = self.spec
        common = dict(description=s.name, style={"description_width": "170px"},
                      layout=widgets.Layout(width="380px", flex="0 0 auto"))
        if s.kind == "choice":
            options = ([(EMPTY, EMPTY)] if s.optional else []) + [(s.labels.get(c, str(c)), c) for c in s.choices]
            return widgets.Dropdown(options=options, **common)
        if s.kind == "bool":
            return widgets.Checkbox(indent=True, **common)
        if s.kind == "int":
            return widgets.IntText(**common)
        if s.kind == "float":
            return widgets.FloatText(**common)
        if s.kind == "multi":
            return widgets.SelectMultiple(options=list(s.choices), rows=min(4, len(s.choices)), **common)
        placeholder = "YAML, e.g. [a, b] or {key: value}" if s.kind == "yaml" else ("empty: none" if s.optional else "")
        return widgets.Text(placeholder=placeholder, continuous_update=False, **common)

    # ---- value in and out -------------------------------------------------

    def set(self, value: Any) -> None:
        """Show ``value`` (a config value) without firing the change callback."""
        self._setting = True
        try:
            self.input.value = self._display(value)
        finally:
            self._setting = False

    def _display(self, value: Any) -> Any:
        s = self.spec
        if s.kind == "choice":
            if value is None:
                return EMPTY if s.optional else s.choices[0]
            return value if value in s.choices else (EMPTY if s.optional else s.choices[0])
        if s.kind == "bool":
            return bool(value)
        if s.kind in ("int", "float"):
            return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0
        if s.kind == "multi":
            return tuple(v for v in (value or ()) if v in s.choices)
        if value is None:
            return ""
        if s.kind == "yaml":
            return "" if value in ({}, []) and not s.optional else flow_yaml(value)
        return str(value)

    def parse(self) -> tuple[Any, Optional[str]]:
        """(config value, None) or (raw value, message) when the text cannot be read."""
        s, raw = self.spec, self.input.value
        if s.kind == "choice":
            return (None if raw == EMPTY else raw), None
        if s.kind == "multi":
            return list(raw), None
        if s.kind in ("bool", "int", "float"):
            return raw, None
        text = raw.strip()
        if s.kind == "text":
            if not text:
                return (None if s.optional else ""), None
            if s.number is not None:
                return _number(text, s.number), None
            return raw, None
        if not text:
            return (None if s.optional else type(s.default)() if s.default is not None else None), None
        try:
            return yaml.safe_load(text), None
        except yaml.YAMLError as exc:
            first = str(exc).splitlines()[0]
            return text, f"not valid YAML: {first}"

    # ---- feedback ---------------------------------------------------------

    def show_error(self, message: Optional[str]) -> None:
        if message == self.message:
            return
        self.message = message
        if message:
            self.error.value = f"<span style='color:#c62828'>&#9888; {html.escape(message)}</span>"
            self.error.layout.display = "block"
            self.input.add_class("ftkit-invalid")
        else:
            self.error.value = ""
            self.error.layout.display = "none"
            self.input.remove_class("ftkit-invalid")

    def _changed(self, change) -> None:
        if not self._setting:
            self._on_change(self)


def _number(text: str, kind: type) -> Any:
    """``text`` as an int/float; left as text (the validator names the problem) when it is not one."""
    try:
        return kind(text)
    except ValueError:
        if kind is int:
            try:
                as_float = float(text)
            except ValueError:
                return text
            return int(as_float) if as_float.is_integer() else text
        return text
