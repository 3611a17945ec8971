"""Helpers the built-in datasets share: seeded template filling."""
from __future__ import annotations

import random
from typing import Callable, Sequence


def generate(make: Callable[[random.Random, int], dict], count: int, seed: int) -> list[dict]:
    """``count`` rows from ``make(rng, index)``, identical on every machine for a seed."""
    rng = random.Random(seed)
    return [make(rng, i) for i in range(count)]


def pick(rng: random.Random, items: Sequence):
    return items[rng.randrange(len(items))]
