"""The form's file and text actions: Load/Save YAML, and the config shown as YAML or as a CLI command.

The YAML and the command are the config's own (``RunConfig.to_yaml`` / ``RunConfig.to_cli``); a form
whose values do not validate yet shows its values as YAML with the problems as comments.
"""
from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Optional, Union

import yaml

from ..errors import ConfigError


class FormFiles:
    """Mixed into ``ConfigForm``: needs its ``_config``, ``_preset``, ``path``, ``text``, ``notes``..."""

    def _load_clicked(self) -> None:
        self.load(self.path.value.strip())
        if not self.notes:
            self.notes = [f"loaded {self.path.value.strip()}"]
            self._update_feedback()

    def _save_clicked(self) -> None:
        self.notes = [self.save(self.path.value.strip())]
        self._update_feedback()

    def save(self, path: Union[str, os.PathLike]) -> str:
        """Write the config as YAML; returns what happened, in words."""
        if self._config is None:
            return "not saved: fix the problems first"
        try:
            self._config.to_yaml(Path(path).expanduser())
        except OSError as exc:
            return f"not saved: {exc}"
        return f"saved to {path}"

    def yaml(self) -> str:
        """The config as YAML (what ``save`` writes)."""
        if self._config is not None:
            return self._config.to_yaml()
        data = self._assemble()
        for section in self._models:
            chosen = data[section]["name"]
            data[section] = {"name": chosen, **({chosen: data[section][chosen]} if chosen in data[section] else {})}
        head = "".join(f"# problem: {p}: {m}\n" for p, m in self.problems)
        return head + yaml.safe_dump(data, sort_keys=False)

    def cli(self, file: Optional[str] = None) -> str:
        """``ftkit train --preset NAME --set path=value ...``: the chosen preset (else the one needing fewest
        changes) and each field that differs from it; with ``file``, ``ftkit train FILE``."""
        if file:
            return f"ftkit train {shlex.quote(str(file))}"
        try:
            return self.config.to_cli(self._preset)
        except ConfigError:  # the chosen preset no longer loads
            return self.cli(self.path.value.strip() or "config.yaml")

    def _show_text(self, kind: str, toggle: bool = True) -> None:
        if toggle and self._text_kind == kind and self.text.layout.display != "none":
            self._text_kind = None
            self.text.layout.display = "none"
            return
        self._text_kind = kind
        if kind == "yaml":
            self.text.value = self.yaml()
        elif self._config is None:
            self.text.value = "# fix the problems above first\n" + "".join(f"# {p}: {m}\n" for p, m in self.problems)
        else:
            file = self.path.value.strip() or "config.yaml"
            self.text.value = f"{self.cli()}\n\n# or, after Save YAML:\n{self.cli(file)}\n"
        self.text.layout.display = "block"
