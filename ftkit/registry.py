"""A name -> spec registry filled by scanning a package folder.

Adding a method, task or ZeRO preset is one new module in its folder: the
module lists its specs in a module-level ``SPECS`` and nothing else needs to
change. Modules whose name starts with ``_`` are helpers, not entries.
"""
from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Generic, Iterator, TypeVar

T = TypeVar("T")


class UnknownName(KeyError):
    """Raised for a name that is not registered; the message suggests the nearest."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class Registry(Generic[T]):
    def __init__(self, package: str, kind: str):
        self.package = package
        self.kind = kind
        self._specs: dict[str, T] | None = None

    def _load(self) -> dict[str, T]:
        if self._specs is None:
            specs: dict[str, T] = {}
            pkg = importlib.import_module(self.package)
            for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda i: i.name):
                if info.name.startswith("_"):
                    continue
                module = importlib.import_module(f"{self.package}.{info.name}")
                for spec in getattr(module, "SPECS", ()):
                    name = spec.name
                    if name in specs:
                        raise RuntimeError(f"{self.kind} {name!r} is registered twice ({info.name})")
                    specs[name] = spec
            self._specs = specs
        return self._specs

    def names(self) -> list[str]:
        return list(self._load())

    def __iter__(self) -> Iterator[T]:
        return iter(self._load().values())

    def __contains__(self, name: object) -> bool:
        return name in self._load()

    def __len__(self) -> int:
        return len(self._load())

    def suggest(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), self.names(), n=1, cutoff=0.5)
        return f"; did you mean {close[0]!r}?" if close else ""

    def get(self, name: str) -> T:
        try:
            return self._load()[name]
        except KeyError:
            raise UnknownName(
                f"unknown {self.kind} {name!r}{self.suggest(name)} "
                f"(`ftkit {self.kind}s` lists all {len(self)})"
            ) from None
