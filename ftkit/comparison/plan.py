"""What a comparison trains: arms (methods or named variants) x seeds, under one equal budget.

A ``Budget`` is steps, tokens seen, wall-clock seconds or estimated FLOPs,
the same for every arm. Steps and tokens become the same ``max_steps`` for
every arm (tokens: batch x accumulation x sequence length x processes per
step, the padded upper bound); FLOPs become steps through each arm's own
estimated FLOPs per step (``ftkit.estimator``), so a cheaper method gets
more steps; seconds stop each run once it has trained that long (not
reproducible to the step, unlike the others).

Seed ``i`` of every arm trains with ``training.seed = base seed + i``: the
same weights initialisation, data order and dropout per seed across arms.
The default number of seeds fits the whole comparison into a time budget
from the estimated cost of one run. No torch is imported here.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional, Union

from ..errors import ConfigError

BUDGET_KINDS = {"steps": "step", "tokens": "tokens seen", "seconds": "seconds", "flops": "estimated FLOPs"}
_UNITS = {"step": "steps", "steps": "steps", "token": "tokens", "tokens": "tokens", "s": "seconds", "sec": "seconds",
          "second": "seconds", "seconds": "seconds", "min": "minutes", "minutes": "minutes", "m": "minutes",
          "flop": "flops", "flops": "flops"}
#: seconds a run costs beyond its steps (loading the model and data, the final evaluation), for the seed default
RUN_OVERHEAD_S = 6.0
#: the default number of seeds stays within these bounds
MIN_SEEDS, MAX_SEEDS = 1, 10
#: the device the time estimate assumes when none is given
DEFAULT_DEVICE = "CPU"


@dataclass(frozen=True)
class Budget:
    """How long every arm trains: ``amount`` of ``kind`` (steps, tokens, seconds or flops)."""

    kind: str = "steps"
    amount: float = 100

    def __post_init__(self):
        if self.kind not in BUDGET_KINDS:
            raise ConfigError([("budget", f"kind must be one of {', '.join(BUDGET_KINDS)}, got {self.kind!r}")])
        if not self.amount or self.amount <= 0:
            raise ConfigError([("budget", f"must be a positive amount, got {self.amount!r}")])

    @classmethod
    def parse(cls, value: Union[str, int, float, "Budget", None], default_steps: int = 100) -> "Budget":
        """``"200"``/``"200 steps"``, ``"2e5 tokens"``, ``"90s"``, ``"5 min"``, ``"1e15 flops"`` or a number (steps)."""
        if isinstance(value, Budget):
            return value
        if value is None or value == "":
            return cls("steps", default_steps)
        if isinstance(value, (int, float)):
            return cls("steps", int(value))
        match = re.fullmatch(r"\s*([0-9.eE+]+)\s*([A-Za-z]*)\s*", str(value))
        if not match:
            raise ConfigError([("budget", f"cannot read {value!r}; write e.g. '200 steps', '2e5 tokens', '90s', "
                                          f"'1e15 flops'")])
        try:
            amount = float(match.group(1))
        except ValueError:
            raise ConfigError([("budget", f"{match.group(1)!r} is not a number")]) from None
        unit = _UNITS.get(match.group(2).lower() or "steps")
        if unit is None:
            raise ConfigError([("budget", f"unknown unit {match.group(2)!r}; use steps, tokens, seconds or flops")])
        if unit == "minutes":
            unit, amount = "seconds", amount * 60
        return cls(unit, int(amount) if unit in ("steps", "tokens") else amount)

    def describe(self) -> str:
        if self.kind == "steps":
            return f"{int(self.amount):,} steps"
        if self.kind == "tokens":
            return f"{int(self.amount):,} tokens"
        if self.kind == "seconds":
            return f"{self.amount:g} s of training"
        return f"{self.amount:.3g} estimated FLOPs"


@dataclass
class Arm:
    """One thing compared: a label and the config changes that make it (``{"method.name": "dora"}``)."""

    label: str
    changes: dict = field(default_factory=dict)


def arms_from(methods: Union[Iterable[Any], dict]) -> list[Arm]:
    """Arms from method names, ``Arm`` objects, or a mapping label -> changes (or label -> method name)."""
    out: list[Arm] = []
    if isinstance(methods, dict):
        for label, changes in methods.items():
            if isinstance(changes, str):
                changes = {"method.name": changes}
            changes = dict(changes or {})
            if "method.name" not in changes and label in _method_names():
                changes["method.name"] = label
            out.append(Arm(str(label), changes))
    else:
        for item in methods:
            out.append(item if isinstance(item, Arm) else Arm(str(item), {"method.name": str(item)}))
    labels = [a.label for a in out]
    if len(set(labels)) != len(labels):
        raise ConfigError([("methods", f"labels must be unique, got {', '.join(labels)}")])
    return out


def _method_names() -> list[str]:
    from ..methods import methods

    return methods.names()


def tokens_per_step(config) -> int:
    t, d = config.training, config.distributed
    return t.batch_size * t.gradient_accumulation_steps * t.max_seq_length * d.num_processes * d.num_nodes


def _estimate(config, device: str):
    from ..estimator import estimate

    return estimate(config, device=device, suggest=False)


def steps_for(config, budget: Budget, device: str = DEFAULT_DEVICE) -> int:
    """Optimizer steps ``config`` trains under ``budget`` (seconds: a cap; the run is stopped on time)."""
    if budget.kind == "steps":
        return int(budget.amount)
    if budget.kind == "tokens":
        return max(1, math.ceil(budget.amount / tokens_per_step(config)))
    if budget.kind == "flops":
        return max(1, math.ceil(budget.amount / _estimate(config, device).flops_per_step))
    return config.training.max_steps or 100_000  # seconds: trained until the clock says stop


def x_scale(config, budget: Budget, device: str = DEFAULT_DEVICE) -> float:
    """Budget units per optimizer step, to plot curves against the budget (seconds: read from events)."""
    if budget.kind == "tokens":
        return float(tokens_per_step(config))
    if budget.kind == "flops":
        return float(_estimate(config, device).flops_per_step)
    return 1.0


def run_seconds(config, budget: Budget, device: str = DEFAULT_DEVICE) -> float:
    """Estimated wall seconds of one run of ``config`` under ``budget``."""
    if budget.kind == "seconds":
        return budget.amount + RUN_OVERHEAD_S
    try:
        per_step = _estimate(config, device).seconds_per_step
    except Exception:  # an architecture the estimator cannot describe: assume a second a step
        per_step = 1.0
    if not math.isfinite(per_step):
        per_step = 1.0
    return steps_for(config, budget, device) * per_step + RUN_OVERHEAD_S


def default_seeds(configs: list, budget: Budget, time_budget_s: float, spent_s: float = 0.0,
                  device: str = DEFAULT_DEVICE) -> int:
    """Seeds per arm so that ``configs`` (one per arm) x seeds, plus ``spent_s`` already planned, fit the time."""
    per_seed = sum(run_seconds(c, budget, device) for c in configs)
    if per_seed <= 0:
        return MIN_SEEDS
    k = int((time_budget_s - spent_s) // per_seed)
    return max(MIN_SEEDS, min(MAX_SEEDS, k))


def arm_config(base, arm: Arm, label_prefix: Optional[str] = None):
    """The base config with the arm's changes and a run name naming the arm."""
    name = f"{(label_prefix or base.name or 'compare')[:32]}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', arm.label)}"[:64]
    return base.update({**arm.changes, "name": name})


def seeded(config, seed_index: int, steps: int, base_seed: int):
    """``config`` at seed ``base_seed + seed_index`` trained for ``steps`` steps."""
    changes: dict = {}
    if config.training.seed != base_seed + seed_index:
        changes["training.seed"] = base_seed + seed_index
    if config.training.max_steps != steps:
        changes["training.max_steps"] = steps
    return config.update(changes) if changes else config
