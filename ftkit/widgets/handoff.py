"""``HandoffPanel``: "Run elsewhere" - the target, its few fields, a live preview of the files, Write.

Works alone (``HandoffPanel(config)``, ``HandoffPanel("phi3-mini-qlora")``)
or beside a ``ConfigForm``, whose every valid change rebuilds the preview.
The preview is the same pure ``ftkit.handoff.build`` the CLI runs; Write puts
the files in a folder; Submit sends them when credentials exist and says what
is missing when not. Importing this module loads no vendor SDK: the target's
build does, on the first preview.
"""
from __future__ import annotations

import html
import typing
from pathlib import Path
from typing import Any, Optional, Union

import ipywidgets as widgets
import yaml

from ..errors import ConfigError
from ..handoff import build, targets

PREVIEW_CHARS = 6000


def _is_text(annotation) -> bool:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return annotation is str or (args == [str])


class HandoffPanel(widgets.VBox):
    """``panel.handoff`` is the current build (or None); ``panel.problems`` what stops it."""

    def __init__(self, source: Any = None, *, target: str = "azureml", options: Optional[dict] = None,
                 out: Optional[str] = None, auto: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.add_class("ftkit-handoff")
        self.form = source if hasattr(source, "on_change") else None
        self._config = None if self.form else self._as_config(source)
        self.handoff = None
        self.problems: list[tuple[str, str]] = []
        self.written: list[Path] = []
        self._active = auto
        self.target = widgets.ToggleButtons(options=[(s.title, s.name) for s in targets], value=target,
                                            description="target", style={"description_width": "50px"})
        self.target.observe(lambda _: self._target_changed(), "value")
        self.fields: dict[str, widgets.Text] = {}
        self.fields_box = widgets.VBox([])
        self.about = widgets.HTML()
        self.status = widgets.HTML()
        self.file_picker = widgets.Dropdown(description="file", options=[], layout=widgets.Layout(width="420px"))
        self.file_picker.observe(lambda _: self._show_file(), "value")
        self.preview = widgets.HTML(layout=widgets.Layout(max_height="420px", overflow="auto"))
        self.out = widgets.Text(value=out or "", description="folder", placeholder="handoff/<target>",
                                layout=widgets.Layout(width="420px"))
        self.write_button = widgets.Button(description="Write", icon="download", button_style="primary")
        self.submit_button = widgets.Button(description="Submit", icon="cloud-upload")
        self.write_button.on_click(lambda _: self.write())
        self.submit_button.on_click(lambda _: self.submit())
        self.message = widgets.HTML()
        self._values = {target: dict(options or {})}
        self.children = [self.target, self.about, self.fields_box, self.status, self.file_picker, self.preview,
                         widgets.HBox([self.out, self.write_button, self.submit_button]), self.message]
        if self.form is not None:
            self.form.on_change(lambda config, problems: self.refresh() if self._active else None)
        self._make_fields()
        if auto:
            self.refresh()

    # ---- the config and the options ------------------------------------------------

    @staticmethod
    def _as_config(source):
        from ..config import RunConfig

        if source is None:
            return RunConfig.preset("demo")
        if isinstance(source, RunConfig):
            return source
        if isinstance(source, dict):
            return RunConfig.from_dict(source)
        if isinstance(source, str) and not Path(source).exists():
            return RunConfig.preset(source)
        from ..handoff import resolve_config

        return resolve_config(str(source))

    @property
    def config(self):
        if self.form is not None:
            return self.form.config if self.form.valid else None
        return self._config

    @config.setter
    def config(self, value) -> None:
        self._config = self._as_config(value)
        self.refresh()

    @property
    def spec(self):
        return targets.get(self.target.value)

    def _make_fields(self) -> None:
        spec, values = self.spec, self._values.setdefault(self.target.value, {})
        self.fields = {}
        basic, advanced = [], []
        for key, info in spec.options.model_fields.items():
            value = values.get(key, info.get_default(call_default_factory=True))
            text = "" if value is None or value == [] else (value if isinstance(value, str) else
                                                             yaml.safe_dump(value, default_flow_style=True).strip())
            w = widgets.Text(value=text, description=key, tooltip=info.description,
                             placeholder=(info.description or "")[:70],
                             style={"description_width": "150px"}, layout=widgets.Layout(width="640px"))
            w.observe(lambda change, key=key: self._field_changed(key, change["new"]), "value")
            self.fields[key] = w
            extra = info.json_schema_extra or {}
            (advanced if isinstance(extra, dict) and extra.get("advanced") else basic).append(w)
        more = widgets.Accordion(children=[widgets.VBox(advanced)], titles=("More (submit)",)) if advanced else None
        if more is not None:
            more.selected_index = None
        self.fields_box.children = basic + ([more] if more is not None else [])
        self.about.value = (f"<b>{html.escape(spec.title)}</b> ({spec.kind}): {html.escape(spec.summary)}<br>"
                            f"carries: {html.escape(spec.carries)}<br>cannot: "
                            + "; ".join(html.escape(c) for c in spec.cannot))

    def _field_changed(self, key: str, text: str) -> None:
        info = self.spec.options.model_fields[key]
        values = self._values.setdefault(self.target.value, {})
        if not text.strip():
            values.pop(key, None)
        elif _is_text(info.annotation):
            values[key] = text
        else:
            try:
                values[key] = yaml.safe_load(text)
            except yaml.YAMLError:
                values[key] = text
        if self._active:
            self.refresh()

    def _target_changed(self) -> None:
        self._make_fields()
        if self._active:
            self.refresh()

    def set(self, **values) -> "HandoffPanel":
        """Set target options by name, as typing into the fields would."""
        for key, value in values.items():
            if key not in self.fields:
                raise KeyError(f"{self.target.value} has no option {key!r}; it has {', '.join(self.fields)}")
            text = "" if value is None else (value if isinstance(value, str)
                                             else yaml.safe_dump(value, default_flow_style=True).strip())
            self.fields[key].value = text
        return self

    @property
    def options(self) -> dict:
        return dict(self._values.get(self.target.value, {}))

    # ---- preview, write, submit ---------------------------------------------------------

    def refresh(self) -> None:
        """Rebuild the files for the current config, target and fields."""
        self._active = True
        config = self.config
        self.handoff, self.problems = None, []
        if config is None:
            self.problems = [("", "fix the form first")]
        else:
            try:
                self.handoff = build(config, self.target.value, self.options)
            except ConfigError as exc:
                self.problems = list(exc.problems)
            except Exception as exc:  # noqa: BLE001 - keep the panel alive, say what failed
                self.problems = [("", f"{type(exc).__name__}: {exc}")]
        self._render()

    def _render(self) -> None:
        h = self.handoff
        if h is None:
            items = "".join(f"<li><b>{html.escape(p)}</b> {html.escape(m)}</li>" if p else f"<li>{html.escape(m)}</li>"
                            for p, m in self.problems)
            self.status.value = f"<span style='color:#c62828'>&#9888; cannot hand off:</span><ul>{items}</ul>"
            self.file_picker.options, self.preview.value = [], ""
            self.write_button.disabled = self.submit_button.disabled = True
            return
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in h.notes)
        checks = "".join(f"<li>{html.escape(c)}</li>" for c in h.checks)
        self.status.value = (f"<span style='color:#2e7d32'>&#10003; {len(h.files)} files</span>"
                             f"<br>checked:<ul>{checks}</ul>not carried:<ul>{notes}</ul>"
                             f"submit:<pre>{html.escape(h.submit_hint)}</pre>")
        keep = self.file_picker.value
        self.file_picker.options = list(h.files)
        self.file_picker.value = keep if keep in h.files else (h.main or next(iter(h.files)))
        self.write_button.disabled = self.submit_button.disabled = False
        self._show_file()

    def _show_file(self) -> None:
        name = self.file_picker.value
        if self.handoff is None or not name:
            self.preview.value = ""
            return
        text = self.handoff.text(name, limit=PREVIEW_CHARS)
        self.preview.value = f"<pre style='font-size:0.85em;white-space:pre-wrap'>{html.escape(text)}</pre>"

    @property
    def folder(self) -> Path:
        return Path(self.out.value.strip() or Path("handoff") / self.target.value)

    def write(self, out: Union[str, Path, None] = None) -> list[Path]:
        if out is not None:
            self.out.value = str(out)
        if self.handoff is None:
            self.refresh()
        if self.handoff is None:
            self.message.value = "<span style='color:#c62828'>nothing written: fix the problems above</span>"
            return []
        self.written = self.handoff.write(self.folder)
        self.message.value = f"wrote {len(self.written)} files to <code>{html.escape(str(self.folder))}</code>"
        return self.written

    def submit(self) -> Optional[str]:
        if not self.write():
            return None
        try:
            result = self.spec.submit(self.folder, self.spec.parse_options(self.options))
        except ConfigError as exc:
            items = "".join(f"<li><b>{html.escape(p)}</b> {html.escape(m)}</li>" for p, m in exc.problems)
            self.message.value = f"<span style='color:#c62828'>not submitted:</span><ul>{items}</ul>"
            return None
        self.message.value = html.escape(result)
        return result
