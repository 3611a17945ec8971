"""Fine-tuning methods: one module per family, each listing its specs in ``SPECS``."""
from ..registry import Registry
from ._base import BuildContext, MethodSpec, Trades

methods: Registry[MethodSpec] = Registry(__name__, "method")

__all__ = ["methods", "MethodSpec", "BuildContext", "Trades"]
