"""Which way to fine-tune: the scenario table as data, checked and ranked with the estimator.

``advise(task, model, gpus, gpu_memory_gb)`` estimates a set of candidate
configurations (full fine-tuning, LoRA, DoRA, QLoRA, (IA)³, prompt tuning,
and DeepSpeed ZeRO stages when there are several GPUs) for the model on that
hardware, keeps the ones that fit (turning on gradient checkpointing or
shrinking the micro-batch when that is what it takes), ranks them by the
quality they can be expected to reach and then by speed, and says in one
line each why. It also checks the scenario table's claims against the same
numbers and flags the ones that do not hold for this model.

Nothing here imports torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

TECHNIQUES = ("LoRA", "QLoRA", "PEFT", "DeepSpeed", "ZeRO", "DoRA")


@dataclass(frozen=True)
class Scenario:
    key: str
    text: str
    marks: dict  # technique -> True (Y) / False (N), as the table states it


def _row(key: str, text: str, marks: str) -> Scenario:
    return Scenario(key, text, dict(zip(TECHNIQUES, (m == "Y" for m in marks.split()))))


#: the scenario table of the design document, as it states it
SCENARIOS = (
    _row("domain", "adapt a pre-trained LLM to a task or domain", "Y Y Y Y Y Y"),
    _row("nlp", "NLP tasks: text classification, NER, machine translation", "Y Y Y Y Y Y"),
    _row("qa", "question answering", "Y Y Y Y Y Y"),
    _row("chat", "human-like chatbot responses", "Y Y Y Y Y Y"),
    _row("creative", "music, art and other creative generation", "Y Y Y Y Y Y"),
    _row("cost", "reduce compute and financial cost", "Y Y N Y Y N"),
    _row("memory", "reduce memory use", "N Y N Y Y Y"),
    _row("fewer_params", "fewer trainable parameters", "N Y Y N N Y"),
    _row("data_parallel", "memory-efficient data parallelism over all GPUs' memory", "N N N Y Y Y"),
)
SCENARIO = {s.key: s for s in SCENARIOS}


def scenario_of(task: str) -> Scenario:
    """The scenario row a task answers: the one its spec names (``TaskSpec.scenario``), else domain adaptation."""
    from .tasks import tasks

    text = tasks.get(task).scenario if task in tasks else ""
    return next((s for s in SCENARIOS if s.text == text), SCENARIO["domain"])

#: expected quality, best first: a tier and a note (from the methods' published comparisons)
QUALITY = {
    "full": (0, "the quality ceiling"),
    "dora": (1, "closest to full fine-tuning at low rank"),
    "lora": (1, "close to full fine-tuning on most tasks"),
    "qlora": (2, "LoRA's quality minus a little from the 4-bit base"),
    "ia3": (3, "few-shot method: needs many steps and a high learning rate"),
    "prompt_tuning": (4, "strong only on large models"),
}


@dataclass
class Option:
    """One candidate configuration and what the estimator says of it."""

    label: str
    method: str
    zero_stage: Optional[int]
    changes: dict
    estimate: Any
    adjustments: list = field(default_factory=list)

    @property
    def fits(self) -> bool:
        return self.estimate.fits

    def line(self) -> str:
        e = self.estimate
        quality = QUALITY.get(self.method, (5, ""))[1]
        how = f" with {', '.join(self.adjustments)}" if self.adjustments else ""
        return (f"{self.label}{how}: {e.peak_gb:.1f} GiB per GPU of {e.gpu_memory_gb:g}, "
                f"{_human(e.trainable_params)} trainable ({100 * e.trainable_share:.2f} %), "
                f"~{e.seconds_per_step:.2g} s per step of {e.tokens_per_step:,} tokens per GPU; {quality}")

    def to_dict(self) -> dict:
        e = self.estimate
        return {"label": self.label, "method": self.method, "zero_stage": self.zero_stage, "fits": e.fits,
                "adjustments": self.adjustments, "peak_gb": round(e.peak_gb, 2),
                "trainable_params": e.trainable_params, "trainable_pct": round(100 * e.trainable_share, 4),
                "seconds_per_step": round(e.seconds_per_step, 4), "quality": QUALITY.get(self.method, (5, ""))[1],
                "changes": self.changes, "line": self.line()}


@dataclass
class Check:
    scenario: str
    technique: str
    table_says: bool
    holds: bool
    numbers: str

    def line(self) -> str:
        mark = "Y" if self.table_says else "N"
        verdict = "holds" if self.holds else "does NOT hold"
        return f"{self.scenario} / {self.technique} = {mark}: {verdict} here: {self.numbers}"

    def to_dict(self) -> dict:
        return {"scenario": self.scenario, "technique": self.technique, "table_says": self.table_says,
                "holds": self.holds, "numbers": self.numbers}


@dataclass
class Advice:
    task: str
    model: str
    gpus: int
    gpu_memory_gb: float
    scenario: Scenario
    ranked: list  # options that fit, best first
    rejected: list  # options that do not fit even adjusted
    checks: list

    @property
    def best(self) -> Optional[Option]:
        return self.ranked[0] if self.ranked else None

    def text(self) -> str:
        lines = [f"{self.task} with {self.model} on {self.gpus} x {self.gpu_memory_gb:g} GiB "
                 f"(scenario: {self.scenario.text}; the table marks "
                 + ", ".join(f"{t} {'Y' if y else 'N'}" for t, y in self.scenario.marks.items()) + ")"]
        if self.ranked:
            lines.append("fits, best first:")
            lines += [f"  {i}. {o.line()}" for i, o in enumerate(self.ranked, 1)]
        else:
            lines.append("nothing fits: a larger GPU, more GPUs or a smaller model")
        if self.rejected:
            lines.append("does not fit:")
            lines += [f"  - {o.label}: needs {o.estimate.peak_gb:.1f} GiB per GPU" for o in self.rejected]
        flagged = [c for c in self.checks if not c.holds]
        if flagged:
            lines.append("table claims that do not hold by these numbers:")
            lines += [f"  ! {c.line()}" for c in flagged]
        held = [c for c in self.checks if c.holds]
        if held:
            lines.append("table claims that hold:")
            lines += [f"    {c.line()}" for c in held]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def to_dict(self) -> dict:
        return {"task": self.task, "model": self.model, "gpus": self.gpus, "gpu_memory_gb": self.gpu_memory_gb,
                "scenario": {"key": self.scenario.key, "text": self.scenario.text, "marks": self.scenario.marks},
                "ranked": [o.to_dict() for o in self.ranked], "rejected": [o.to_dict() for o in self.rejected],
                "checks": [c.to_dict() for c in self.checks]}


def _human(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M" if n >= 1e6 else f"{n:,}"


def _device_for(memory_gb: float) -> str:
    """A device of the table with about that much memory (throughput only sets the time estimate)."""
    from .estimator import DEVICES

    gpus = [d for d in DEVICES.values() if d.kind == "cuda"]
    return min(gpus, key=lambda d: (abs(d.memory_gb - memory_gb), -d.tflops_16)).name


def candidates(task_kind: str, gpus: int) -> list[tuple[str, str, dict]]:
    """(label, method, extra changes) to estimate."""
    out = [("full fine-tuning", "full", {}), ("LoRA r=16 on all linear layers", "lora", {}),
           ("DoRA r=16 on all linear layers", "dora", {}), ("QLoRA (nf4 base, LoRA r=16)", "qlora", {}),
           ("(IA)³", "ia3", {})]
    if task_kind in ("causal_lm", "seq2seq", "seq_cls"):
        out.append(("prompt tuning (20 tokens)", "prompt_tuning", {}))
    if gpus > 1:
        for stage in (1, 2, 3):
            out.append((f"full fine-tuning + ZeRO-{stage} over {gpus} GPUs", "full",
                        {"distributed.zero_stage": stage}))
        out.append((f"full fine-tuning + ZeRO-3 + CPU offload over {gpus} GPUs", "full",
                    {"distributed.zero_stage": 3, "distributed.offload_optimizer": "cpu",
                     "distributed.offload_params": "cpu"}))
        out.append((f"LoRA + ZeRO-2 over {gpus} GPUs", "lora", {"distributed.zero_stage": 2}))
    return out


def _config(task: str, model: str, method: str, gpus: int, seq: int, batch: int, extra: dict):
    from .config import RunConfig

    changes = {"task.name": task, "model.name_or_path": model, "method.name": method,
               "training.max_seq_length": seq, "training.batch_size": batch,
               "distributed.num_processes": gpus}
    if method in ("lora", "qlora", "dora"):
        changes.update({f"method.{method}.r": 16, f"method.{method}.lora_alpha": 32,
                        f"method.{method}.target_modules": "all-linear"})
    if gpus > 1 and "distributed.zero_stage" not in extra:
        changes["distributed.launcher"] = "torchrun"
    changes.update(extra)
    return RunConfig().update(changes), changes


def advise(task: str, model: str, gpus: int = 1, gpu_memory_gb: float = 24, device: Optional[str] = None,
           seq: Optional[int] = None, batch: int = 4) -> Advice:
    """Rank the configurations that fit ``model`` for ``task`` on ``gpus`` x ``gpu_memory_gb`` GB.

    ``seq``: tokens per example (default 1024 for generative tasks, 256 otherwise); ``batch``: examples per
    GPU per step before any adjustment; ``device``: a name from ``ftkit.estimator.DEVICES`` for the time
    estimate (default: a GPU of the table with about that much memory).
    """
    from .estimator import estimate
    from .shapes import from_run_config
    from .tasks import tasks

    spec = tasks.get(task)
    seq = seq or (1024 if spec.model_kind in ("causal_lm", "seq2seq") else 256)
    device = device or _device_for(gpu_memory_gb)
    ranked, rejected = [], []
    shapes_cache: dict = {}
    for label, method, extra in candidates(spec.model_kind, gpus):
        try:
            config, changes = _config(task, model, method, gpus, seq, batch, extra)
        except Exception:  # a method this task or model cannot use
            continue
        key = (spec.model_kind,)
        if key not in shapes_cache:
            shapes_cache[key] = from_run_config(config)
        shapes = shapes_cache[key]
        kwargs = dict(gpus=gpus, gpu_memory_gb=gpu_memory_gb, device=device, shapes=shapes, suggest=False)
        est = estimate(config, **kwargs)
        adjustments: list[str] = []
        for what, override in (("gradient checkpointing", {"checkpointing": True}),
                               (f"micro-batch 1 x {batch} accumulation", {"batch": 1, "accum": batch})):
            if est.fits:
                break
            trial = {**({"checkpointing": True} if adjustments else {}), **override}
            est = estimate(config, **kwargs, **trial)
            adjustments.append(what)
        option = Option(label, method, config.distributed.zero_stage, changes, est, adjustments)
        (ranked if est.fits else rejected).append(option)
    ranked.sort(key=lambda o: (QUALITY.get(o.method, (5, ""))[0], o.estimate.seconds_per_step))
    scenario = scenario_of(task)
    checks = check_table(ranked + rejected, gpus)
    return Advice(task, model, gpus, gpu_memory_gb, scenario, ranked, rejected, checks)


def _find(options: list, method: str, zero: Optional[int] = None) -> Optional[Option]:
    return next((o for o in options if o.method == method and o.zero_stage == zero
                 and "offload" not in o.label), None)


def check_table(options: list, gpus: int) -> list[Check]:
    """The table's claims on cost, memory, trainable parameters and data parallelism, by the numbers."""
    full, lora, dora = _find(options, "full"), _find(options, "lora"), _find(options, "dora")
    qlora, ia3 = _find(options, "qlora"), _find(options, "ia3")
    out: list[Check] = []
    if not (full and lora):
        return out

    def gb(o: Option) -> float:
        return o.estimate.peak_gb

    def pct(o: Option) -> str:
        return f"{100 * o.estimate.trainable_share:.2f} %"

    def sec(o: Option) -> float:
        return o.estimate.seconds_per_step

    # fewer trainable parameters
    row = SCENARIO["fewer_params"]
    for tech, opt in (("LoRA", lora), ("QLoRA", qlora), ("PEFT", ia3), ("DoRA", dora)):
        if opt:
            fewer = opt.estimate.trainable_params < full.estimate.trainable_params
            out.append(Check(row.text, tech, row.marks[tech], fewer == row.marks[tech],
                             f"{pct(opt)} of the weights train vs 100 % for full fine-tuning"))
    zero3 = _find(options, "full", 3)
    out.append(Check(row.text, "ZeRO", row.marks["ZeRO"], not row.marks["ZeRO"],
                     "ZeRO partitions states across GPUs; every weight still trains (100 %)"))
    # reduce memory use
    row = SCENARIO["memory"]
    for tech, opt in (("LoRA", lora), ("QLoRA", qlora), ("PEFT", ia3), ("DoRA", dora)):
        if opt:
            lower = gb(opt) < gb(full)
            out.append(Check(row.text, tech, row.marks[tech], lower == row.marks[tech],
                             f"{gb(opt):.1f} GiB per GPU vs {gb(full):.1f} GiB for full fine-tuning"))
    if zero3:
        lower = gb(zero3) < gb(full)
        out.append(Check(row.text, "ZeRO", row.marks["ZeRO"], lower == row.marks["ZeRO"],
                         f"full fine-tuning with ZeRO-3 over {gpus} GPUs: {gb(zero3):.1f} GiB per GPU vs "
                         f"{gb(full):.1f} GiB without"))
    elif gpus == 1:
        out.append(Check(row.text, "ZeRO", row.marks["ZeRO"], False,
                         "on one GPU ZeRO partitions nothing; only its CPU offload saves GPU memory"))
    # reduce compute and financial cost
    row = SCENARIO["cost"]
    for tech, opt in (("LoRA", lora), ("QLoRA", qlora), ("PEFT", ia3), ("DoRA", dora)):
        if opt:
            cheaper = sec(opt) < sec(full) or (not full.fits and opt.fits)
            note = f"~{sec(opt):.2g} s per step vs {sec(full):.2g} s for full fine-tuning"
            if not full.fits and opt.fits:
                note += f" (and it fits where full fine-tuning needs {gb(full):.0f} GiB)"
            out.append(Check(row.text, tech, row.marks[tech], cheaper == row.marks[tech], note))
    # memory-efficient data parallelism
    row = SCENARIO["data_parallel"]
    if dora:
        out.append(Check(row.text, "DoRA", row.marks["DoRA"], not row.marks["DoRA"],
                         "DoRA changes what trains, not how memory spreads over GPUs; it partitions nothing "
                         "(run it under ZeRO for that)"))
    if zero3 and gpus > 1:
        out.append(Check(row.text, "ZeRO", row.marks["ZeRO"], (gb(zero3) < gb(full)) == row.marks["ZeRO"],
                         f"ZeRO-3 spreads parameters, gradients and states: {gb(zero3):.1f} GiB per GPU "
                         f"vs {gb(full):.1f} GiB replicated"))
    return out
