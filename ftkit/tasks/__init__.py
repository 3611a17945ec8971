"""Tasks: one module each, listing its spec in ``SPECS``."""
from ..registry import Registry
from ._base import TaskContext, TaskData, TaskSpec

tasks: Registry[TaskSpec] = Registry(__name__, "task")

__all__ = ["tasks", "TaskSpec", "TaskContext", "TaskData"]
