"""ftkit inside Jupyter: a server extension with a small REST API and the JupyterLab extension it feeds.

Installing ftkit enables both (``etc/jupyter/jupyter_server_config.d/ftkit.json``
and ``share/jupyter/labextensions/ftkit-lab``). The runs folder is, first
found: ``c.FtkitExtension.runs_dir``, ``$FTKIT_RUNS_DIR``, or ``runs`` under
the server's root directory. The server exports it as ``FTKIT_RUNS_DIR`` to the
kernels and terminals it starts, so runs started from any notebook folder land
where the panel looks.
"""
from __future__ import annotations

import os
from pathlib import Path

from traitlets import Unicode
from traitlets.config import Configurable

LABEXTENSION = "ftkit-lab"


class FtkitExtension(Configurable):
    """Settings of ftkit's Jupyter server extension."""

    runs_dir = Unicode(
        "",
        config=True,
        help="Folder of ftkit runs shown in JupyterLab's runs panel. Empty: $FTKIT_RUNS_DIR, "
        "else 'runs' under the server's root directory. A relative path is taken from the root directory.",
    )

    def resolve_runs_dir(self, root_dir: str) -> Path:
        chosen = self.runs_dir or os.environ.get("FTKIT_RUNS_DIR") or "runs"
        path = Path(chosen).expanduser()
        return path if path.is_absolute() else Path(root_dir).expanduser() / path


def _jupyter_server_extension_points() -> list[dict]:
    return [{"module": "ftkit.jupyter"}]


def _jupyter_labextension_paths() -> list[dict]:
    return [{"src": "labextension", "dest": LABEXTENSION}]


def _load_jupyter_server_extension(serverapp) -> None:
    from .handlers import setup_handlers

    runs_dir = FtkitExtension(parent=serverapp).resolve_runs_dir(serverapp.root_dir)
    os.environ["FTKIT_RUNS_DIR"] = str(runs_dir)  # kernels and terminals inherit it
    setup_handlers(serverapp.web_app, runs_dir)
    serverapp.log.info("ftkit: runs panel serves runs from %s", runs_dir)
