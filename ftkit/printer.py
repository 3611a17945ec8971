"""What the CLI prints: events as a progress bar and lines, summaries of any age, tables."""
from __future__ import annotations

import sys
from typing import Optional, Sequence


def _fmt_eta(seconds: Optional[float]) -> str:
    from .units import clock

    return clock(seconds)


class Printer:
    """Turns events into a progress bar and lines on a terminal (plain lines when piped).

    ``ended`` says whether the final line has been printed.
    """

    def __init__(self, stream=None, width: int = 24):
        self.out = stream or sys.stdout
        self.tty = self.out.isatty()
        self.width = width
        self._bar_open = False
        self.ended = False

    def _line(self, text: str) -> None:
        if self._bar_open:
            self.out.write("\n")
            self._bar_open = False
        self.out.write(text + "\n")
        self.out.flush()

    def __call__(self, e: dict) -> None:
        kind = e["type"]
        if kind == "started":
            trainable, total = e.get("trainable_params"), e.get("total_params")
            share = f"{trainable:,} of {total:,} parameters ({100 * trainable / max(total, 1):.3f} %), " \
                if trainable is not None and total else ""
            self._line(f"training {e.get('method', '?')} on {e.get('task', '?')} ({e.get('model', '?')}, "
                       f"{e.get('device', '?')}): {share}{e.get('max_steps', '?')} steps")
        elif kind == "step":
            step, total = e.get("step") or 0, max(e.get("max_steps") or 1, 1)
            filled = min(self.width, int(self.width * step / total))
            bar = "█" * filled + "·" * (self.width - filled)
            s_per_step = e.get("s_per_step")
            eta = (total - step) * s_per_step if s_per_step else None
            loss = e.get("loss")
            text = (f"step {step:>5}/{total} {bar} loss {'-' if loss is None else format(loss, '.4f')}  "
                    f"lr {e.get('learning_rate') or 0:.2e}  "
                    f"{e.get('tokens_per_s') or 0:,.0f} tok/s  {e.get('rss_mb') or 0:,.0f} MB  eta {_fmt_eta(eta)}")
            if self.tty:
                self.out.write("\r" + text)
                self._bar_open = True
                self.out.flush()
            else:
                self._line(text)
        elif kind == "eval":
            metrics = "  ".join(f"{k} {v:.4g}" for k, v in (e.get("metrics") or {}).items()
                                if isinstance(v, (int, float)))
            self._line(f"eval @ {e.get('step')}: {metrics}")
        elif kind == "sample":
            for s in (e.get("samples") or [])[:2]:
                self._line(f"  sample: {s.get('prompt')!r} -> {s.get('output')!r}")
        elif kind == "checkpoint":
            self._line(f"checkpoint @ {e.get('step')}: {e.get('path')}")
        elif kind == "log" and e.get("level") == "error":
            lines = str(e.get("message", "")).rstrip().splitlines()
            self._line(lines[-1] if lines else "error")
        elif kind == "log" and e.get("level") == "warning":  # e.g. rows cut or dropped by max_seq_length
            self._line(str(e.get("message", "")))
        elif kind == "status" and e.get("status") in ("paused", "stopping"):
            self._line(f"{e['status']} at step {e.get('step')}")
        elif kind == "ended":
            summary = e.get("summary") or {"status": e.get("status"), "reason": e.get("reason")}
            self._line(summary_text(summary))
            self.ended = True


def _number(value, fmt: str) -> str:
    return "-" if not isinstance(value, (int, float)) else format(value, fmt)


def summary_text(summary: Optional[dict]) -> str:
    """A summary as lines for a terminal; any summary the store can hold (older ones, partial ones)."""
    from .runstate import read_summary
    from .units import mb

    s = read_summary(summary or {})
    lines = [f"run {s['run_id'] or '?'}: {s['status']}" + (f" ({s['reason']})" if s.get("reason") else "")]
    if s.get("loss_first") is not None:
        lines.append(f"  loss {_number(s['loss_first'], '.4f')} -> {_number(s['loss_last'], '.4f')} over "
                     f"{s['steps']} steps ({s.get('s_per_step') or 0:.3f} s/step, "
                     f"{s.get('tokens_per_s') or 0:,.0f} tok/s)")
    metrics = {k: v for k, v in s["metrics"].items() if isinstance(v, (int, float))}
    if metrics:
        lines.append("  last eval (the saved model's score) " + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    best = s.get("best")
    if isinstance(best, dict) and best.get("value") is not None:
        lines.append(f"  best eval {best.get('metric')} {best['value']:.4g} at step {best.get('step')}")
    if s.get("trainable_params"):
        pct = f" ({s['trainable_pct']} %)" if s.get("trainable_pct") is not None else ""
        total = f" of {s['total_params']:,}" if s.get("total_params") else ""
        lines.append(f"  trainable {s['trainable_params']:,}{total}{pct}")
    memory = []
    if s.get("peak_cuda_mb"):
        memory.append(f"peak {mb(s['peak_cuda_mb'])} CUDA allocated")
    elif s.get("peak_rss_mb"):
        memory.append(f"peak {mb(s['peak_rss_mb'])} process RSS")
    if s.get("run_peak_mb") is not None:
        above = f" above the {mb(s['baseline_rss_mb'])} the process held before it" \
            if s.get("baseline_rss_mb") and not s.get("peak_cuda_mb") else ""
        predicted = f" (predicted {mb(s['predicted_peak_mb'])})" if s.get("predicted_peak_mb") else ""
        memory.append(f"the run's own {mb(s['run_peak_mb'])}{above}{predicted}")
    if memory:
        lines.append("  memory: " + "; ".join(memory))
    if s.get("final_dir"):
        lines.append(f"  saved to {s['final_dir']}")
    elif s.get("checkpoint"):
        lines.append(f"  last checkpoint {s['checkpoint']}")
    return "\n".join(lines)


def _table(rows: list[dict], columns: Sequence[str], headers: Optional[dict] = None) -> str:
    if not rows:
        return "(none)"
    headers = {c: (headers or {}).get(c, c) for c in columns}
    widths = {c: max(len(headers[c]), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    head = "  ".join(headers[c].ljust(widths[c]) for c in columns)
    body = ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join([head] + body)
