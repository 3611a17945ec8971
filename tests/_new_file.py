"""Adding an entry to a registry exactly as a new file in its folder does, for the length of a test."""
from __future__ import annotations

import contextlib
import importlib
import sys
import textwrap
from pathlib import Path


@contextlib.contextmanager
def new_file(package: str, module: str, source: str, folder: Path):
    """``package``/``module``.py holding ``source``, discovered by the package's registry like a shipped one.

    The file lives in ``folder``, put on the package's search path, so nothing under ftkit/ is written.
    """
    pkg = importlib.import_module(package)
    registry = next(v for v in vars(pkg).values() if type(v).__name__ == "Registry")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(textwrap.dedent(source))
    pkg.__path__.append(str(folder))
    registry._specs = None  # found again on next use, this file with the others
    try:
        yield registry
    finally:
        pkg.__path__.remove(str(folder))
        sys.modules.pop(f"{package}.{module}", None)
        registry._specs = None
