"""What ``Predictor.predict`` returns, one small type per model head, and its one error."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import ClassVar, Optional


class PredictError(ValueError):
    """Input or options that do not fit the run's task, or a run that has nothing to predict with."""


# ---- results --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Generation:
    text: str
    kind: ClassVar[str] = "generation"

    def to_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Classification:
    label: str
    probabilities: dict[str, float]
    kind: ClassVar[str] = "classification"

    def to_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    def __str__(self) -> str:
        ranked = sorted(self.probabilities.items(), key=lambda kv: -kv[1])
        return "\n".join([self.label] + [f"  {name:<16} {p:7.2%}" for name, p in ranked])


@dataclass(frozen=True)
class Entity:
    text: str
    label: str
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Entities:
    entities: list[Entity] = field(default_factory=list)
    kind: ClassVar[str] = "ner"

    def to_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    def __str__(self) -> str:
        if not self.entities:
            return "(no entities)"
        return "\n".join(f"{e.label:<8} {e.text!r} [{e.start}:{e.end}] {e.score:.2f}" for e in self.entities)


@dataclass(frozen=True)
class Answer:
    answer: str
    start: int
    end: int
    score: float
    kind: ClassVar[str] = "qa"

    def to_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    def __str__(self) -> str:
        return f"{self.answer} (score {self.score:.2f}, context[{self.start}:{self.end}])"


# ---- loaded models, cached -------------------------------------------------------------------
