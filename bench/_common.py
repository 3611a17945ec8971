"""What the benchmark scripts share: offline settings, the bench model and data, timing and tables.

Timings on a shared machine are noisy, so scripts compare A and B inside one
run, alternating them (A, B, A, B, ...) and reporting medians and the median
of the per-pair ratios; ``machine()`` records where and when a figure was taken.
"""
from __future__ import annotations

import ctypes
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Optional

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

#: the small Llama bench/memory.py measures (8 layers x 384, about 16M parameters with ftkit's tokenizer)
BENCH_MODEL = dict(model_type="llama", hidden_size=384, intermediate_size=1024, num_hidden_layers=8,
                   num_attention_heads=6, num_key_value_heads=6, max_position_embeddings=512,
                   tie_word_embeddings=True, rms_norm_eps=1e-6)


def offline_env() -> None:
    """No Hub access, no tokenizer threads, and DeepSpeed's one JIT build cached in the repo's ignored .cache/."""
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        os.environ.setdefault(key, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions"))


def build_model(folder: Path, spec: Optional[dict] = None, seed: int = 0) -> str:
    """A random-init causal LM from ``spec`` saved like a checkpoint, with ftkit's tokenizer (done once)."""
    folder = Path(folder)
    if (folder / "config.json").exists():
        return str(folder)
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from ftkit.models import load_builtin_tokenizer

    tok = load_builtin_tokenizer()
    params = dict(spec or BENCH_MODEL)
    config = AutoConfig.for_model(params.pop("model_type"), **params, vocab_size=len(tok),
                                  pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                                  bos_token_id=tok.bos_token_id)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def count_params(spec: dict, vocab: int) -> int:
    """Parameters of a Llama ``spec`` (tied embeddings), without building it."""
    h, i, n = spec["hidden_size"], spec["intermediate_size"], spec["num_hidden_layers"]
    heads, kv = spec["num_attention_heads"], spec.get("num_key_value_heads", spec["num_attention_heads"])
    head_dim = h // heads
    attn = h * heads * head_dim * 2 + h * kv * head_dim * 2
    layer = attn + 3 * h * i + 2 * h
    embed = vocab * h * (1 if spec.get("tie_word_embeddings", True) else 2)
    return n * layer + embed + h


def long_texts(folder: Path) -> str:
    """Domain notes joined six at a time: every example fills max_seq_length, as the estimator assumes
    (it predicts the worst case; the collator pads each batch only to its longest example)."""
    path = Path(folder) / "long-domain.jsonl"
    if not path.exists():
        from ftkit.tasks.domain import builtin

        texts = [r["text"] for r in builtin()]
        lines = [json.dumps({"text": " ".join(texts[i:i + 6])}) for i in range(0, len(texts) - 6, 6)]
        path.write_text("\n".join(lines) + "\n")
    return str(path)


def split_files(config, folder: Path) -> tuple[str, str]:
    """The train and eval rows ftkit would use for ``config``, written as JSONL files both sides read."""
    from ftkit.data import load_rows

    train, evals = load_rows(config)
    folder = Path(folder)
    paths = folder / "train.jsonl", folder / "eval.jsonl"
    for path, rows in zip(paths, (train, evals)):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(paths[0]), str(paths[1])


def run_worker(changes: dict, runs_dir: str, timeout: float = 1800) -> dict:
    """One ftkit run started by a Controller from ``RunConfig().update(changes)``; its status, summary,
    events and wall time (from ``start`` to the end)."""
    from ftkit.config import RunConfig
    from ftkit.controller import Controller

    config = RunConfig().update({"runs_dir": runs_dir, **changes})
    started = time.perf_counter()
    run = Controller(runs_dir=runs_dir).start(config)
    status = run.wait(timeout)
    wall = time.perf_counter() - started
    return {"status": status, "summary": run.summary or {}, "events": run.events, "wall_s": wall,
            "path": str(run.path)}


# ---- timing -------------------------------------------------------------------------------------


def cpu_seconds() -> float:
    """CPU seconds of this process and its waited-for children (user + system): steadier than wall time
    on a shared machine, where waiting for a core inflates wall time but not CPU time."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def alternate(jobs: dict[str, Callable[[], object]], repeats: int, warmup: int = 0,
              log: Callable[[str], None] = lambda s: None) -> dict[str, dict[str, list[float]]]:
    """Wall and CPU seconds of each job, run in turn A, B, A, B, ... ``repeats`` times
    (after ``warmup`` untimed rounds): ``{name: {"wall": [...], "cpu": [...]}}``."""
    times: dict[str, dict[str, list[float]]] = {name: {"wall": [], "cpu": []} for name in jobs}
    for i in range(warmup + repeats):
        for name, job in jobs.items():
            c0, t0 = cpu_seconds(), time.perf_counter()
            job()
            dt, dc = time.perf_counter() - t0, cpu_seconds() - c0
            if i >= warmup:
                times[name]["wall"].append(dt)
                times[name]["cpu"].append(dc)
            log(f"{'warm-up' if i < warmup else f'round {i - warmup + 1}'}: {name} {dt:.2f} s wall, {dc:.2f} s CPU")
    return times


def ratio_summary(a: list[float], b: list[float]) -> dict:
    """Medians of A and B, and the median (and range) of the per-round ratios A/B."""
    ratios = [x / y for x, y in zip(a, b)]
    return {"a_median": statistics.median(a), "b_median": statistics.median(b),
            "ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "rounds": len(ratios)}


# ---- memory -------------------------------------------------------------------------------------


def _status_kb(field: str) -> Optional[float]:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        pass
    return None


class PeakRss:
    """The peak RSS a block of code adds to this process (MB), on Linux.

    Before the block, freed heap goes back to the OS (``malloc_trim``) and the
    kernel's high-water mark is reset to the current RSS (``/proc/self/clear_refs``,
    value 5); after it, ``VmHWM`` minus the RSS at the start is what the block
    added at its peak, transient tensors included.
    """

    def __init__(self):
        self.start_mb: Optional[float] = None
        self.peak_mb: Optional[float] = None

    @staticmethod
    def available() -> bool:
        return os.access("/proc/self/clear_refs", os.W_OK) and _status_kb("VmHWM") is not None

    def __enter__(self) -> "PeakRss":
        import gc

        gc.collect()
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except OSError:
            pass
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass
        rss = _status_kb("VmRSS")
        self.start_mb = rss / 1024 if rss is not None else None
        return self

    def __exit__(self, *exc) -> None:
        hwm = _status_kb("VmHWM")
        if hwm is not None and self.start_mb is not None:
            self.peak_mb = hwm / 1024 - self.start_mb

    @property
    def added_mb(self) -> Optional[float]:
        return self.peak_mb


# ---- reporting ----------------------------------------------------------------------------------


def machine() -> str:
    """Cores, CPU model, memory, accelerator and load: where a figure was taken."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        total = next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
        mem = f", {int(total.split()[1]) / 2**20:.0f} GiB"
    except (OSError, StopIteration):
        pass
    load = ""
    if hasattr(os, "getloadavg"):
        load = f", load average {os.getloadavg()[0]:.1f}"
    gpu = ""
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f", {torch.cuda.get_device_name()}"
    except ImportError:
        pass
    return f"{os.cpu_count()}-core CPU ({cpu}){mem}{gpu}{load}"


def stamp(command: str) -> str:
    """The header line every bench prints: command, machine, date."""
    return f"command: {command}\nmachine: {machine()}\ndate: {datetime.date.today().isoformat()}"


def markdown(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def command_line() -> str:
    return "python " + " ".join([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:])
