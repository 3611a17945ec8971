"""What an estimate holds, and how it reads: a breakdown per phase, the peak, units and the verdict.

All sizes are GiB (2**30 bytes) in text, bytes in the fields. What each figure corresponds to:

* ``allocated_gb``: ``torch.cuda.max_memory_allocated`` (tensors alive at the peak);
* ``reserved_gb``: ``torch.cuda.max_memory_reserved`` (allocated plus the caching allocator's slack);
* ``peak_gb``: the device's total use at the peak, reserved plus the CUDA context, what nvidia-smi shows
  and what must fit in the card. On a CPU: RSS above a process with torch loaded.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from .devices import FIT_MARGIN, GiB, MiB, TIGHT_MARGIN

#: breakdown keys that are not tensors the allocator hands out
_NOT_ALLOCATED = ("framework overhead", "allocator slack")


@dataclass
class Estimate:
    """A run's predicted memory per device, parameters and time per step, with a verdict."""

    model: str
    method: str
    task: str
    device: str
    gpus: int
    gpu_memory_gb: float  # GiB of each device
    total_params: int
    trainable_params: int
    #: bytes on each device during a training step, by what takes them
    breakdown: dict[str, float]
    #: bytes on the CPU of each machine (offloaded states and parameters), by what takes them
    cpu_breakdown: dict[str, float]
    flops_per_step: float
    seconds_per_step: float
    tokens_per_step: int
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    suggestions: list[dict] = field(default_factory=list)
    exact_params: bool = True
    #: bytes at the peak of each other phase (loading the model, generation during evaluation), same basis
    #: as the training breakdown's total
    phases: dict[str, float] = field(default_factory=dict)
    #: bytes in CUDA unified memory (paged optimizer states): not in max_memory_allocated, may spill to CPU
    unified_breakdown: dict[str, float] = field(default_factory=dict)
    #: settings the estimate took as a what-if: ftkit cannot run them, the numbers assume them anyway
    what_if: list[str] = field(default_factory=list)

    # ---- derived ------------------------------------------------------------------------------------
    @property
    def on_cpu(self) -> bool:
        return self.settings.get("device_kind") == "cpu"

    @property
    def training_bytes(self) -> float:
        return sum(self.breakdown.values())

    @property
    def peak_phase(self) -> str:
        """The phase whose peak is the run's: "training", "loading" or "generation"."""
        best = max(self.phases.items(), key=lambda kv: kv[1], default=("training", 0.0))
        return best[0] if best[1] > self.training_bytes else "training"

    @property
    def peak_bytes(self) -> float:
        """Peak memory of one device over the whole run, framework overhead included."""
        return max([self.training_bytes, *self.phases.values()])

    @property
    def peak_gb(self) -> float:  # GiB
        return self.peak_bytes / GiB

    peak_gib = peak_gb

    @property
    def peak_mb(self) -> float:  # MiB
        return self.peak_bytes / MiB

    @property
    def allocated_mb(self) -> float:
        """What ``torch.cuda.max_memory_allocated`` (GPU) or RSS above the start (CPU) should show, MiB."""
        scale = self.peak_bytes / self.training_bytes if self.training_bytes else 1.0
        allocated = sum(v for k, v in self.breakdown.items() if k not in _NOT_ALLOCATED)
        if self.on_cpu:
            allocated += self.breakdown.get("framework overhead", 0)
        else:  # another phase's peak: the same share of it is allocated
            allocated *= scale if self.peak_phase != "training" else 1.0
        return allocated / MiB

    @property
    def allocated_gb(self) -> float:
        return self.allocated_mb * MiB / GiB

    @property
    def reserved_gb(self) -> float:
        """``torch.cuda.max_memory_reserved``: the peak without the CUDA context."""
        return (self.peak_bytes - self.breakdown.get("framework overhead", 0)) / GiB

    @property
    def cpu_gb(self) -> float:
        return sum(self.cpu_breakdown.values()) / GiB

    @property
    def trainable_share(self) -> float:
        return self.trainable_params / self.total_params if self.total_params else 0.0

    @property
    def fit(self) -> str:
        """"fits", "tight" (within the estimate's error of the card's size) or "does not fit"."""
        if self.on_cpu or not self.gpu_memory_gb:
            return "fits"
        if self.peak_bytes <= self.gpu_memory_gb * GiB * FIT_MARGIN:
            return "fits"
        if self.peak_bytes <= self.gpu_memory_gb * GiB * TIGHT_MARGIN:
            return "tight"
        return "does not fit"

    @property
    def fits(self) -> bool:
        return self.fit == "fits"

    @property
    def verdict(self) -> str:
        where = f"{self.gpus} x {self.gpu_memory_gb:g} GiB"
        phase = "" if self.peak_phase == "training" else f", peak while {_PHASE_WORDS[self.peak_phase]}"
        if self.on_cpu:
            return f"needs about {self.peak_gb:.2f} GiB of RAM per process{phase}"
        first = self.suggestions[0]["change"] if self.suggestions else "a larger GPU"
        used = f"{self.peak_gb:.1f} GiB per GPU of {self.gpu_memory_gb:g} GiB{phase}"
        if self.fit == "fits":
            return f"fits on {where}: {used}"
        if self.fit == "tight":
            return f"tight on {where}: {used}, within the estimate's error of the limit; first change: {first}"
        return f"does not fit on {where}: needs {used}; first change: {first}"

    @property
    def first_suggestion(self) -> Optional[str]:
        return self.suggestions[0]["change"] if self.suggestions else None

    # ---- output -------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        gib = lambda d: {k: round(v / GiB, 4) for k, v in d.items()}  # noqa: E731
        return {
            "model": self.model, "method": self.method, "task": self.task, "device": self.device,
            "gpus": self.gpus, "gpu_memory_gb": self.gpu_memory_gb, "units": "GiB (2**30 bytes); MiB for *_mb",
            "total_params": self.total_params, "trainable_params": self.trainable_params,
            "trainable_pct": round(100 * self.trainable_share, 4), "exact_params": self.exact_params,
            "peak_gb": round(self.peak_gb, 3), "peak_phase": self.peak_phase,
            "allocated_mb": round(self.allocated_mb, 1), "allocated_gb": round(self.allocated_gb, 3),
            "reserved_gb": round(self.reserved_gb, 3),
            "breakdown_gb": gib(self.breakdown), "phases_gb": gib(self.phases),
            "unified_gb": gib(self.unified_breakdown),
            "cpu_gb": round(self.cpu_gb, 3), "cpu_breakdown_gb": gib(self.cpu_breakdown),
            "tokens_per_step": self.tokens_per_step, "flops_per_step": self.flops_per_step,
            "seconds_per_step": round(self.seconds_per_step, 4),
            "fit": self.fit, "fits": self.fits, "verdict": self.verdict, "suggestions": self.suggestions,
            "settings": self.settings, "what_if": self.what_if, "notes": self.notes,
        }

    def table(self) -> str:
        def gib(v: float) -> str:
            return f"{v / GiB:9.3f} GiB"

        lines = [
            f"{self.method} on {self.task}: {self.model}",
            f"  parameters: {_human(self.total_params)} total, {_human(self.trainable_params)} trainable "
            f"({100 * self.trainable_share:.3f} %)" + ("" if self.exact_params else " (estimated)"),
            f"  training step, per {'process' if self.on_cpu else 'GPU'} ({self.device}, {self.gpus} device(s)):",
        ]
        for key, value in self.breakdown.items():
            if abs(value) >= 0.5 * MiB:
                lines.append(f"    {key:<38}{gib(value)}")
        lines.append(f"    {'total':<38}{gib(self.training_bytes)}")
        for phase, value in self.phases.items():
            lines.append(f"  {_PHASE_WORDS[phase] + ' peak':<40}{gib(value)}")
        if self.on_cpu:
            lines.append(f"  peak ({self.peak_phase}): {self.peak_gb:.3f} GiB of RSS above a process with torch loaded")
        else:
            lines.append(f"  peak ({self.peak_phase}): {self.peak_gb:.2f} GiB on the device (nvidia-smi) = "
                         f"{self.reserved_gb:.2f} GiB max_memory_reserved + CUDA context; "
                         f"{self.allocated_gb:.2f} GiB max_memory_allocated")
        if self.unified_breakdown:
            lines.append("  CUDA unified memory (paged; not in max_memory_allocated, can spill to CPU):")
            for key, value in self.unified_breakdown.items():
                lines.append(f"    {key:<38}{gib(value)}")
        if self.cpu_breakdown:
            lines.append("  CPU memory for offload (per machine):")
            for key, value in self.cpu_breakdown.items():
                lines.append(f"    {key:<38}{gib(value)}")
        lines.append(f"  time: ~{self.seconds_per_step:.3g} s per optimizer step "
                     f"({self.tokens_per_step:,} tokens, {self.flops_per_step:.3g} FLOPs)")
        lines.append(f"  verdict: {self.verdict}")
        for s in self.suggestions:
            lines.append(f"    - {s['change']}: {s['peak_gb']:.1f} GiB per GPU" + (" (fits)" if s["fits"] else ""))
        for item in self.what_if:
            lines.append(f"  what-if: {item}")
        for note in self.notes:
            lines.append(f"  note: {note}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


_PHASE_WORDS = {"training": "training", "loading": "loading the model", "generation": "generating at evaluation"}


def _human(n: int) -> str:
    return f"{n / 1e9:.3f}B" if n >= 1e9 else f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n:,}"
