"""Reading config files: YAML that refuses a key written twice, and the shipped presets."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import yaml

from .errors import ConfigError

PRESETS_DIR = Path(__file__).parent / "presets"


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key written twice in one mapping is an error, not a silent overwrite."""


def _unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: dict = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise ConfigError([(str(key), f"appears twice in one section (lines {seen[key]} and {line}); the "
                                          "second would silently replace the first: keep one")])
        seen[key] = line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def list_presets(folder: Union[str, os.PathLike, None] = None) -> dict[str, str]:
    """Preset name -> its one-line description (the file's first comment), from ``folder`` (ftkit's presets)."""
    out = {}
    for path in sorted(Path(folder or PRESETS_DIR).glob("*.yaml")):
        first = path.read_text().splitlines()[0]
        out[path.stem] = first.lstrip("# ").strip() if first.startswith("#") else ""
    return out


def _read(path: Union[str, os.PathLike]) -> str:
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError([("", f"config file {str(path)!r} does not exist")]) from None
    except OSError as exc:
        raise ConfigError([("", f"cannot read config file {str(path)!r}: {exc.strerror}")]) from None
