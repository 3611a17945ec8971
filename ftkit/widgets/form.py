"""``ConfigForm``: the run form, generated from ``RunConfig``'s own field metadata.

Every change re-validates the whole config with ``RunConfig.from_dict``; each
problem the validator reports is shown under the field its path names, and
Start stays disabled until there are none. The method and task dropdowns swap
in the chosen entry's own options.
"""
from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Callable, Optional, Union

import ipywidgets as widgets
import yaml

from ..config import RunConfig, list_presets
from ..errors import ConfigError
from ._fields import FieldSpec, FieldWidget
from ._form_files import FormFiles
from ._form_schema import MISSING, REGISTRIES, collect, leaf_paths, lookup

SECTIONS = [("", "Run"), ("model", "Model"), ("data", "Data"), ("task", "Task"), ("method", "Method"),
            ("quantization", "Quantization"), ("distributed", "Distributed"), ("training", "Training"),
            ("whatif", "What-if (estimate only)")]
class ConfigForm(FormFiles, widgets.VBox):
    """Edit a ``RunConfig``; ``form.config`` is the current valid config, ``form.on_start(cb)`` runs cb(config)."""

    def __init__(self, config: Union[RunConfig, dict, str, None] = None, *, preset: Optional[str] = None,
                 path: str = "config.yaml", **kwargs):
        super().__init__(**kwargs)
        self.add_class("ftkit-form")
        self._specs: dict[str, FieldSpec] = {}
        self._models: dict[str, Any] = {}  # choice section -> {entry: options model}
        self.fields: dict[str, FieldWidget] = {}
        self._values: dict[str, Any] = {}
        #: fields set by the user or a preset -> which; the others follow the method (its learning rate...)
        self._origins: dict[str, str] = {}
        self._parse_errors: dict[str, str] = {}
        self._start_callbacks: list[Callable[[RunConfig], Any]] = []
        self._change_callbacks: list[Callable[[Optional[RunConfig], list], Any]] = []
        self._entry_boxes: dict[tuple[str, str], widgets.Widget] = {}
        self._entry_holders: dict[str, widgets.Box] = {}
        self._entry_notes: dict[str, widgets.HTML] = {}
        self._loading = False
        self._preset: Optional[str] = None
        self._config: Optional[RunConfig] = None
        self.problems: list[tuple[str, str]] = []
        self.notes: list[str] = []
        self._specs, self._models = collect(RunConfig)
        self._build(path)
        if preset:
            self.preset.value = preset
        else:
            self.load(config if config is not None else RunConfig())

    # ---- building the widgets ---------------------------------------------

    def _build(self, path: str) -> None:
        presets = list_presets()
        self.preset = widgets.Dropdown(
            options=[("(none: defaults)", "")] + [(f"{n}: {d}" if d else n, n) for n, d in presets.items()],
            description="preset", style={"description_width": "60px"},
            layout=widgets.Layout(width="auto", flex="1 1 260px", max_width="420px"),
        )
        self.preset.observe(self._preset_changed, "value")
        self.path = widgets.Text(value=path, description="file", style={"description_width": "40px"},
                                 layout=widgets.Layout(width="220px"))
        # buttons as wide as their labels (ipywidgets' default is 148 px each): the row fits 740 px
        self.load_button = widgets.Button(description="Load YAML", icon="folder-open", layout=widgets.Layout(width="auto"))
        self.save_button = widgets.Button(description="Save YAML", icon="save", layout=widgets.Layout(width="auto"))
        self.load_button.on_click(lambda _: self._load_clicked())
        self.save_button.on_click(lambda _: self._save_clicked())
        top = widgets.HBox([self.preset, self.path, self.load_button, self.save_button],
                           layout=widgets.Layout(flex_flow="row wrap"))

        boxes, titles = [], []
        for key, title in SECTIONS:
            boxes.append(self._section_box(key))
            titles.append(title)
        self._titles = titles
        self.sections = widgets.Accordion(children=boxes, titles=tuple(titles))
        self.sections.selected_index = [k for k, _ in SECTIONS].index("method")

        self.message = widgets.HTML("")
        self.message.add_class("ftkit-form-message")
        self.start_button = widgets.Button(description="Start", button_style="success", icon="play", disabled=True)
        self.start_button.add_class("ftkit-start")
        self.start_button.on_click(lambda _: self._start_clicked())
        auto = widgets.Layout(width="auto")
        self.yaml_button = widgets.Button(description="Show as YAML", icon="file-text", layout=auto)
        self.cli_button = widgets.Button(description="Show as CLI command", icon="terminal", layout=auto)
        self.yaml_button.on_click(lambda _: self._show_text("yaml"))
        self.cli_button.on_click(lambda _: self._show_text("cli"))
        self.text = widgets.Textarea(layout=widgets.Layout(width="100%", height="260px", display="none"))
        self.text.add_class("ftkit-form-text")
        self._text_kind: Optional[str] = None
        actions = widgets.HBox([self.start_button, self.yaml_button, self.cli_button])
        # invalid inputs get a red border (the widget's own class; stock widgets have no error state)
        style = widgets.HTML("<style>.ftkit-invalid input, .ftkit-invalid textarea, .ftkit-invalid select"
                             " {border-color: #c62828 !important; box-shadow: 0 0 0 1px #c62828;}</style>")
        self.children = [style, top, self.sections, self.message, actions, self.text]

    def _section_box(self, key: str) -> widgets.Widget:
        if key == "":
            paths = [p for p in self._specs if "." not in p]
            return self._fields_box(paths)
        if key in self._models:
            name_field = self._field(f"{key}.name")
            note = widgets.HTML("")
            holder = widgets.VBox([])
            self._entry_notes[key], self._entry_holders[key] = note, holder
            return widgets.VBox([name_field.box, note, holder])
        return self._fields_box([p for p in self._specs if p.startswith(key + ".")])

    def _fields_box(self, paths: list[str]) -> widgets.Widget:
        basic = [self._field(p).box for p in paths if not self._specs[p].advanced]
        advanced = [self._field(p).box for p in paths if self._specs[p].advanced]
        if not paths:
            return widgets.HTML("<i>No options.</i>")
        if advanced:
            fold = widgets.Accordion(children=[widgets.VBox(advanced)], titles=(f"Advanced ({len(advanced)})",))
            fold.add_class("ftkit-advanced")
            basic.append(fold)
        return widgets.VBox(basic)

    def _field(self, path: str) -> FieldWidget:
        if path not in self.fields:
            fw = FieldWidget(self._specs[path], self._field_changed)
            fw.set(self._values.get(path, self._specs[path].default))
            self.fields[path] = fw
        return self.fields[path]

    #: the fields of one launcher only, shown when it (or auto, which may pick it) is chosen
    LAUNCHER_FIELDS = {"distributed.slurm.": ("slurm",), "distributed.hostfile": ("auto", "deepspeed"),
                       "distributed.rendezvous_timeout": ("auto", "torchrun"),
                       "distributed.node_rank": ("auto", "torchrun")}

    def _show_launcher_fields(self, launcher: Any) -> None:
        for path, fw in self.fields.items():
            for prefix, launchers in self.LAUNCHER_FIELDS.items():
                if path.startswith(prefix):
                    fw.box.layout.display = None if launcher in launchers else "none"

    def _show_entry(self, section: str, entry: Any) -> None:
        """Put the chosen method's (or task's) own options under its dropdown."""
        if section not in self._entry_holders:
            return
        registry = REGISTRIES.get(section)
        spec = registry.get(entry) if registry is not None and entry in registry else None
        self._entry_notes[section].value = (
            f"<span style='color:#444'>{html.escape(spec.summary)}</span>" if spec is not None else ""
        )
        if entry not in self._models[section]:
            self._entry_holders[section].children = []
            return
        key = (section, entry)
        if key not in self._entry_boxes:
            prefix = f"{section}.{entry}."
            box = self._fields_box([p for p in self._specs if p.startswith(prefix)])
            box.add_class(f"ftkit-options-{section}")
            self._entry_boxes[key] = box
        self._entry_holders[section].children = [self._entry_boxes[key]]

    # ---- values -----------------------------------------------------------

    def load(self, source: Union[RunConfig, dict, str, os.PathLike]) -> None:
        """Show a config, a plain mapping or a YAML file; problems it has are marked like typed ones."""
        self.notes = []
        if isinstance(source, RunConfig):
            data = source.model_dump(mode="json")
        elif isinstance(source, dict):
            data = source
        else:
            try:
                data = yaml.safe_load(Path(source).expanduser().read_text()) or {}
            except (OSError, yaml.YAMLError) as exc:
                self.notes.append(f"cannot load {str(source)!r}: {exc}")
                self._update_feedback()
                return
            if not isinstance(data, dict):
                self.notes.append(f"{str(source)!r} does not hold a mapping of sections")
                self._update_feedback()
                return
        if isinstance(source, RunConfig):
            explicit = {p: o for p, o in source._origins.items() if o in ("user", "preset")}
        else:
            explicit = {p: "user" for p in leaf_paths(data)}
        self._origins = {}
        for path in self._specs:
            found = [o for p, o in explicit.items() if p == path or p.startswith(path + ".") or path.startswith(p + ".")]
            if found:
                self._origins[path] = found[0]
        self._loading = True
        try:
            for path, spec in self._specs.items():
                value = lookup(data, path)
                value = spec.default if value is MISSING else value
                self._values[path] = value
                if path in self.fields:
                    self.fields[path].set(value)
            self._parse_errors.clear()
            for section in self._models:
                self._show_entry(section, self._values.get(f"{section}.name"))
            self._show_launcher_fields(self._values.get("distributed.launcher"))
        finally:
            self._loading = False
        unknown = [p for p in leaf_paths(data) if p not in self._specs and not any(
            p.startswith(s + ".") for s, spec in self._specs.items() if spec.kind == "yaml")]
        if unknown:
            self.notes.append("ignored unknown keys: " + ", ".join(unknown[:8]) + (" ..." if len(unknown) > 8 else ""))
        self.validate()

    def set(self, path: str, value: Any) -> None:
        """Set one field as if typed (``form.set("method.lora.r", 4)``)."""
        if path not in self._specs:
            raise KeyError(f"no field {path!r}")
        if path in self.fields:
            fw = self.fields[path]
            before = fw.input.value
            fw.input.value = fw._display(value)
            if fw.input.value == before:  # no change event: still take the value
                self._field_changed(fw)
        else:
            self._values[path] = value
            self._mark(path)
            self.validate()

    def _mark(self, path: str) -> None:
        """``path`` was set by the user; a new method takes the preset's method-dependent values with it."""
        self._origins[path] = "user"
        if path == "method.name":
            from ..config import method_dependent

            for dependent in method_dependent():
                if self._origins.get(dependent) == "preset":
                    del self._origins[dependent]

    def get(self, path: str) -> Any:
        return self._values[path]

    def _field_changed(self, fw: FieldWidget) -> None:
        path = fw.spec.path
        value, problem = fw.parse()
        self._values[path] = value
        if problem:
            self._parse_errors[path] = problem
        else:
            self._parse_errors.pop(path, None)
        section = path[:-5] if path.endswith(".name") else None
        if section in self._models:
            self._show_entry(section, value)
        if path == "distributed.launcher":
            self._show_launcher_fields(value)
        if not self._loading:
            self._mark(path)
            self.validate()

    def _included(self, path: str) -> bool:
        """Assembled into the config: what was set (not a default), and only the chosen method's and task's options."""
        for section in self._models:
            if path.startswith(section + ".") and path != f"{section}.name":
                if path.split(".")[1] != self._values.get(f"{section}.name"):
                    return False
        return path in self._origins or path.endswith(".name") and path[:-5] in self._models

    def _assemble(self) -> dict:
        data: dict = {}
        for path, value in self._values.items():
            if not self._included(path):
                continue
            node = data
            *parents, last = path.split(".")
            for key in parents:
                node = node.setdefault(key, {})
            node[last] = value
        return data

    # ---- validation ---------------------------------------------------------

    def validate(self) -> Optional[RunConfig]:
        """Check the whole config; mark every problem at its field. Returns the config or None."""
        try:
            origins = {p: o for p, o in self._origins.items() if self._included(p)}
            for section in self._models:
                origins.setdefault(f"{section}.name", "default")
            config: Optional[RunConfig] = RunConfig.from_dict(self._assemble(), origins=origins)
            problems: list[tuple[str, str]] = []
        except ConfigError as exc:
            config, problems = None, list(exc.problems)
        if config is not None:  # fields nobody set show what applies: the method's usual value, or a reset
            for path in self._specs:
                if path not in self._origins and path not in self._parse_errors:
                    value = config.get(path)
                    self._values[path] = value
                    if path in self.fields:
                        self.fields[path].set(value)
        for path, message in self._parse_errors.items():
            problems = [p for p in problems if p[0] != path] + [(path, message)]
            config = None
        self._config, self.problems = config, problems
        self._update_feedback()
        for callback in list(self._change_callbacks):
            callback(config, problems)
        return config

    def _visible(self, path: str) -> bool:
        for section in self._models:
            if path.startswith(section + ".") and path != f"{section}.name":
                entry = path.split(".")[1]
                return entry == self._values.get(f"{section}.name")
        return True

    def _target(self, path: str) -> Optional[str]:
        path = path.split("[")[0]
        while path:
            if path in self.fields:
                return path if self._visible(path) else None
            path = path.rpartition(".")[0]
        return None

    def _update_feedback(self) -> None:
        by_field: dict[str, list[str]] = {}
        loose: list[tuple[str, str]] = []
        counts: dict[str, int] = {}
        for path, message in self.problems:
            target = self._target(path)
            if target:
                by_field.setdefault(target, []).append(message)
            else:
                loose.append((path, message))
            top = path.split(".")[0] if "." in path else ""
            top = top if top in dict(SECTIONS) else ""
            counts[top] = counts.get(top, 0) + 1
        for path, fw in self.fields.items():
            fw.show_error("; ".join(by_field[path]) if path in by_field else None)
        self.sections.titles = tuple(
            f"{title}  \u26a0 {counts[key]}" if counts.get(key) else title for (key, _), title in zip(SECTIONS, self._titles)
        )
        lines = [f"<div>{html.escape(n)}</div>" for n in self.notes]
        if self.problems:
            lines.append(f"<div style='color:#c62828'><b>{len(self.problems)} problem"
                         f"{'s' if len(self.problems) > 1 else ''} to fix before Start</b></div>")
            lines += [f"<div style='color:#c62828'>&#9888; {html.escape(p + ': ' if p else '')}{html.escape(m)}</div>"
                      for p, m in loose]
        elif self._config is not None:
            c = self._config
            for path, origin in c._origins.items():
                if origin == "reset":
                    lines.append(f"<div style='color:#444'>{html.escape(path)}: cleared, the preset's value fits only "
                                 "the built-in data (set it to keep one)</div>")
            lines.append(f"<div style='color:#2e7d32'>&#10003; ready: {html.escape(c.method_spec.title)} on "
                         f"{html.escape(c.task.name)} with {html.escape(c.model_name)}</div>")
        self.message.value = "".join(lines)
        self.start_button.disabled = self._config is None
        if self._text_kind:
            self._show_text(self._text_kind, toggle=False)

    @property
    def valid(self) -> bool:
        return self._config is not None

    @property
    def config(self) -> RunConfig:
        """The current config; raises ``ConfigError`` (naming each field) while it is not valid."""
        if self._config is None:
            raise ConfigError(self.problems or [("", "the form has problems")])
        return self._config

    def show_length(self, report: Optional[dict]) -> None:
        """Put the data's suggested max_seq_length beside the field (from ``data.length_report``), with a button."""
        fw = self._field("training.max_seq_length")
        if not hasattr(self, "length_hint"):
            self.length_hint = widgets.HTML(layout=widgets.Layout(margin="0 0 0 8px"))
            self.length_hint.add_class("ftkit-length-hint")
            self.use_length = widgets.Button(description="use it", layout=widgets.Layout(width="70px"))
            self.use_length.on_click(lambda _: self.set("training.max_seq_length", self._suggested))
            row = fw.box.children[0]
            row.children = tuple(row.children) + (self.length_hint, self.use_length)
        self._suggested = (report or {}).get("suggested_max_seq_length")
        if not report or not self._suggested:
            self.length_hint.value, self.use_length.layout.display = "", "none"
            return
        cut, dropped = report.get("truncated", 0), report.get("dropped", 0)
        colour = "#c62828" if report.get("warn") else "#444"
        self.length_hint.value = (
            f"<span style='color:{colour}'>suggested: {self._suggested} (keeps 95 % of rows whole); at "
            f"{report.get('max_seq_length')}: {cut} cut, {dropped} dropped</span>")
        self.use_length.layout.display = "none" if self._suggested == self._values.get("training.max_seq_length") else None

    # ---- actions --------------------------------------------------------------

    def on_start(self, callback: Callable[[RunConfig], Any]) -> None:
        self._start_callbacks.append(callback)

    def on_change(self, callback: Callable[[Optional[RunConfig], list], Any]) -> None:
        """``callback(config or None, problems)`` after every validation."""
        self._change_callbacks.append(callback)

    def _start_clicked(self) -> None:
        if self._config is None:
            return
        for callback in list(self._start_callbacks):
            callback(self._config)

    def _preset_changed(self, change) -> None:
        name = change["new"]
        self._preset = name or None
        if not name:
            return
        try:
            config = RunConfig.preset(name)
        except ConfigError as exc:
            self.notes = [str(exc)]
            self._update_feedback()
            return
        self.load(config)
