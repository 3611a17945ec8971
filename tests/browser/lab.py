"""Helpers for browser tests: a JupyterLab handle, notebooks, screenshots."""
from __future__ import annotations

from pathlib import Path

import nbformat

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


class Lab:
    def __init__(self, root: Path, port: int, token: str, runs: Path):
        self.root, self.port, self.token, self.runs = root, port, token, runs
        self.url = f"http://127.0.0.1:{port}"

    def write_notebook(self, name: str, cells: list[str]) -> str:
        nb = nbformat.v4.new_notebook()
        nb.cells = [nbformat.v4.new_code_cell(src) for src in cells]
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nbformat.write(nb, self.root / name)
        return name


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def open_and_run(page, lab: Lab, notebook: str) -> None:
    """Open a notebook in JupyterLab, wait for its kernel, and run all cells.

    ``reset`` drops the layout an earlier test left, so no other notebook can be
    the current one when the cells are run.
    """
    page.goto(f"{lab.url}/lab/tree/{notebook}?reset&token={lab.token}")
    page.wait_for_function(
        "(path) => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
        " const k = w && w.context && w.context.path === path && w.sessionContext"
        "   && w.sessionContext.session && w.sessionContext.session.kernel;"
        " return k && k.status === 'idle'; }",
        arg=notebook,
        timeout=120_000,
    )
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
