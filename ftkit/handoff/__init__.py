"""Hand a run to another platform: Azure Machine Learning, Azure AI Foundry, Kaito.

One module per target, each listing its :class:`TargetSpec` in ``SPECS``;
``targets`` finds them (a new target is one new file). ``build(config,
target, options)`` is pure: it returns a :class:`Handoff` (relative path ->
file contents, the settings not carried, how to submit). ``Handoff.write``
puts it on disk; each target's ``submit`` sends a written folder.

Importing this package loads neither torch nor a vendor SDK: the SDKs are
imported by the targets' build and submit functions only.
"""
from ..registry import Registry
from ._base import Handoff, HandoffError, TargetSpec, build, list_presets, load_preset, resolve_config

targets: Registry[TargetSpec] = Registry(__name__, "handoff target")

__all__ = ["targets", "TargetSpec", "Handoff", "HandoffError", "build", "list_presets", "load_preset",
           "resolve_config"]
