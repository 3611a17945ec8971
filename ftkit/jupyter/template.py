"""The quickstart notebook that the launcher item copies into a new notebook.

A wheel carries it as ``ftkit/assets/quickstart.ipynb``; an editable install
(a source checkout) reads ``notebooks/01_quickstart.ipynb`` next to the package.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

PACKAGE = Path(__file__).resolve().parents[1]
CANDIDATES = (PACKAGE / "assets" / "quickstart.ipynb", PACKAGE.parent / "notebooks" / "01_quickstart.ipynb")


def template_path() -> Optional[Path]:
    return next((p for p in CANDIDATES if p.is_file()), None)


def quickstart() -> dict:
    """The quickstart notebook (nbformat 4 JSON) with outputs and execution counts cleared."""
    path = template_path()
    if path is None:
        raise FileNotFoundError("the quickstart notebook is not installed: reinstall ftkit "
                                "(it ships as ftkit/assets/quickstart.ipynb)")
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
    nb.setdefault("metadata", {}).pop("widgets", None)  # saved widget state would show stale views
    return nb
