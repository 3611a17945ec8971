"""Comparisons a user can trust: seeds per method, each method at its own learning rate, equal budgets,
and a verdict with its uncertainty.

``Study`` runs one (``study.py``); ``plan`` turns a budget into steps and picks the number of seeds;
``search`` chooses learning rates on held-out rows; ``stats`` holds the intervals, Welch's t-test and
the verdict; ``results`` reads runs into rows, tables and curves; ``report`` writes text, CSV and HTML.
Importing this package loads no torch.
"""
from .plan import Arm, Budget
from .search import LrSearch
from .study import Study

__all__ = ["Arm", "Budget", "LrSearch", "Study"]
