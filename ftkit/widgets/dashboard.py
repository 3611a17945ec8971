"""``Dashboard``: the live view of one run, fed by its events.

Events arrive on the run's thread; they are buffered and drawn at most every
``interval`` seconds, and each draw sends only the points added since the
last one (see ``_plot``), so a 10,000-step run costs the same per update as a
100-step one.
"""
from __future__ import annotations

import collections
import threading
from typing import Any, Optional

import ipywidgets as widgets
from plotly.subplots import make_subplots

from ..runstate import ACTIVE, RunState, for_config, read_summary
from . import _runs
from ._feed import EventFeed
from ._html import duration, esc, number, table
from ._plot import PALETTE, Ema, Meter, add_stream, figure_widget, fit_width, push

STATUS_COLORS = {"running": "#1565c0", "paused": "#ef6c00", "finished": "#2e7d32", "failed": "#c62828",
                 "stopped": "#6d4c41", "stopping": "#6d4c41", "queued": "#616161", "starting": "#616161"}


class Dashboard(widgets.VBox):
    """Live plots, progress, controls, log, samples and summary for ``run`` (a Run, a record or a run id).

    ``interval``: seconds between redraws at most (``None``: redraw only on ``flush()``);
    ``max_points``: older points kept per curve (decimated); ``tail_points``: newest points kept whole;
    ``plots``: ``"auto"`` (a FigureWidget, or a static image where the frontend cannot render one),
    ``"figurewidget"`` or ``"static"``; ``None`` takes ``ftkit.widgets.set_plots`` or ``FTKIT_PLOTS``.
    """

    def __init__(self, run: Any, controller: Any = None, *, interval: Optional[float] = 0.25,
                 max_points: int = 400, tail_points: int = 100, log_lines: int = 12,
                 plots: Optional[str] = None, **kwargs):
        super().__init__(**kwargs)
        self._plots = plots
        self._status_callbacks: list = []
        self._told: Optional[str] = None  # the status the callbacks last heard
        self.add_class("ftkit-dashboard")
        self.run = _runs.resolve(run, controller)
        self._log_lines = log_lines
        self._status = _runs.status(self.run, "created")
        self.state = RunState(**for_config(_runs.config(self.run)))  # the run as its events say it is
        self._start_elapsed: Optional[tuple[float, int]] = None  # (elapsed, step) of the first step event
        self._elapsed: Optional[float] = None
        self._summary: Optional[dict] = None
        self._samples: Optional[dict] = None
        self._log = collections.deque(maxlen=200)
        self._dirty: set[str] = set()
        self._ema = Ema()
        self._events = 0
        self._updates = 0
        self._history = collections.deque(maxlen=100_000)  # (step, bytes) per update
        self._lock = threading.RLock()  # drawing happens on the timer thread and on button clicks
        self._build(max_points, tail_points)
        self._feed = EventFeed(self._handle_live, interval)
        self._unsubscribe = None
        self._replayed: set = set()
        with self._lock:  # live events wait until the backlog is drawn
            subscribe = getattr(self.run, "subscribe", None)
            if callable(subscribe):
                self._unsubscribe = subscribe(self._feed.put)
            backlog = _runs.events(self.run)
            self._replayed = {_runs.event_key(e) for e in backlog[-256:]}
            self._dirty.add("status")
            self._handle(backlog)

    @classmethod
    def attach(cls, run_id: str, controller: Any = None, **kwargs) -> "Dashboard":
        """A dashboard for a run started elsewhere (the CLI, another cell, an earlier kernel)."""
        return cls(run_id, controller, **kwargs)

    # ---- layout -------------------------------------------------------------

    def _build(self, max_points: int, tail_points: int) -> None:
        config = _runs.config(self.run)
        spec = getattr(config, "task_spec", None)
        self._metric = spec.metric if spec else None
        metric_names = [m for m in (spec.metrics if spec and spec.metrics else ([spec.metric] if spec else []))
                        if m != "loss"]
        titles = ("loss", "learning rate", self._metric or "eval metric", "tokens / s", "memory (MB)", "grad norm")
        fig = make_subplots(rows=2, cols=3, subplot_titles=titles, horizontal_spacing=0.1, vertical_spacing=0.16)
        fig.update_layout(height=520, margin=dict(l=40, r=10, t=40, b=30), legend=dict(orientation="h", y=-0.08),
                          uirevision="keep")
        kw = dict(max_points=max_points, tail_points=tail_points)
        s = self._streams = {
            "loss": add_stream(fig, "train loss", row=1, col=1, color=PALETTE[0], width=1, opacity=0.35, **kw),
            "loss_ema": add_stream(fig, "train loss (smoothed)", row=1, col=1, color=PALETTE[0], **kw),
            "eval_loss": add_stream(fig, "eval loss", row=1, col=1, color=PALETTE[1], mode="lines+markers", **kw),
            "learning_rate": add_stream(fig, "learning rate", row=1, col=2, color=PALETTE[2], **kw),
            "tokens_per_s": add_stream(fig, "tokens/s", row=2, col=1, color=PALETTE[4], **kw),
            "rss_mb": add_stream(fig, "process RSS", row=2, col=2, color=PALETTE[5], **kw),
            "cuda_allocated_mb": add_stream(fig, "CUDA allocated", row=2, col=2, color=PALETTE[6], **kw),
            "cuda_peak_mb": add_stream(fig, "CUDA peak", row=2, col=2, color=PALETTE[7], dash="dot", **kw),
            "grad_norm": add_stream(fig, "grad norm", row=2, col=3, color=PALETTE[8], **kw),
        }
        for i, name in enumerate(metric_names):
            s["metric:" + name] = add_stream(fig, name, row=1, col=3, color=PALETTE[(3 + i * 6) % 10],
                                             mode="lines+markers", **kw)
        # an axis with no points yet shows 0-1 (plotly's own empty range is -1-4), then fits its points
        fig.update_xaxes(range=[0, 1], autorange=False)
        fig.update_yaxes(range=[0, 1], autorange=False)
        self._empty_axes: dict[str, list] = {}  # layout key ("xaxis3", "yaxis") -> the streams drawn on it
        for st in s.values():
            trace = fig.data[st.index]
            for axis in ((trace.xaxis or "x").replace("x", "xaxis", 1), (trace.yaxis or "y").replace("y", "yaxis", 1)):
                self._empty_axes.setdefault(axis, []).append(st)
        # learning rates as 1.95e-3, not 0.00195: short labels that do not run into the loss plot at half width
        fig.update_yaxes(tickformat=".3~e", nticks=4, row=1, col=2)
        self.figure = figure_widget(fig, self._plots)
        self._meter = Meter(self.figure)

        self.status_label = widgets.HTML()
        self.status_label.add_class("ftkit-status")
        self.progress = widgets.IntProgress(value=0, min=0, max=1, layout=widgets.Layout(width="45%"))
        self.progress.add_class("ftkit-progress")
        self.progress_label = widgets.HTML()
        auto = widgets.Layout(width="auto")
        self.stop_button = widgets.Button(description="Stop", icon="stop", button_style="danger", layout=auto)
        self.pause_button = widgets.Button(description="Pause", icon="pause", layout=auto)
        self.resume_button = widgets.Button(description="Resume", icon="play", layout=auto)
        self.save_button = widgets.Button(description="Save checkpoint", icon="save", layout=auto)
        for button, action in ((self.stop_button, "stop"), (self.pause_button, "pause"),
                               (self.resume_button, "resume"), (self.save_button, "save_checkpoint")):
            button.add_class("ftkit-" + action.replace("_", "-"))
            button.on_click(lambda _, a=action: self._act(a))
        self.log_view = widgets.HTML()
        self.log_view.add_class("ftkit-log")
        self.samples_view = widgets.HTML()
        self.summary_card = widgets.HTML(layout=widgets.Layout(display="none"))
        self.summary_card.add_class("ftkit-summary")
        controls = widgets.HBox([self.stop_button, self.pause_button, self.resume_button, self.save_button])
        progress = widgets.HBox([self.progress, self.progress_label], layout=widgets.Layout(align_items="center"))
        self.children = [self.status_label, progress, controls, self.summary_card, self.figure,
                         self.samples_view, self.log_view]

    # ---- events in ------------------------------------------------------------

    def _handle_live(self, events: list[dict]) -> None:
        with self._lock:
            if self._replayed:
                fresh = []
                for event in events:
                    key = _runs.event_key(event)
                    if key in self._replayed:  # already drawn from the backlog
                        self._replayed.discard(key)
                    else:
                        fresh.append(event)
                events = fresh
            self._handle(events)

    def flush(self) -> int:
        """Draw everything received so far now (the timer does this by itself)."""
        return self._feed.flush()

    def _handle(self, events: list[dict]) -> None:
        with self._lock:
            for event in events:
                self._events += 1
                if not self.state.apply(event):
                    continue  # an evaluation reported twice
                handler = getattr(self, "_on_" + str(event.get("type")), None)
                if handler is not None:
                    handler(event)
            self._render()

    def _on_started(self, e: dict) -> None:
        self._status = "running"
        trainable, total = e.get("trainable_params"), e.get("total_params")
        share = f" ({100 * trainable / total:.3f} %)" if trainable and total else ""
        self._note(f"started on {e.get('device', '?')}: {number(trainable)} of {number(total)} parameters train{share}")
        self._dirty.add("status")

    def _on_step(self, e: dict) -> None:
        step = e.get("step", self._step)
        if e.get("elapsed") is not None:
            if self._start_elapsed is None:
                self._start_elapsed = (e["elapsed"], step)
            self._elapsed = e["elapsed"]
        s = self._streams
        loss = e.get("loss")
        if loss is not None:
            s["loss"].add(step, loss)
            s["loss_ema"].add(step, self._ema(loss))
        for key in ("learning_rate", "tokens_per_s", "rss_mb", "cuda_allocated_mb", "cuda_peak_mb", "grad_norm"):
            if e.get(key) is not None:
                s[key].add(step, e[key])
        if self._status in ("created", "queued", "starting"):
            self._status = "running"
            self._dirty.add("status")

    def _on_eval(self, e: dict) -> None:
        step, metrics = e.get("step", self._step), e.get("metrics") or {}
        if metrics.get("loss") is not None:
            self._streams["eval_loss"].add(step, metrics["loss"])
        for name, value in metrics.items():
            stream = self._streams.get("metric:" + name)
            if stream is not None:
                stream.add(step, value)
        shown = ", ".join(f"{k} {number(v)}" for k, v in metrics.items() if isinstance(v, (int, float)))
        self._note(f"eval at step {step}: {shown}")

    def _on_sample(self, e: dict) -> None:
        self._samples = e
        self._dirty.add("samples")

    def _on_log(self, e: dict) -> None:
        message = str(e.get("message", ""))
        lines = message.rstrip().splitlines() or [""]
        for line in lines[-self._log_lines:]:
            self._note(line, e.get("level"))

    def _on_checkpoint(self, e: dict) -> None:
        self._note(f"checkpoint at step {e.get('step')}: {e.get('path')}")

    def _on_status(self, e: dict) -> None:
        self._status = e.get("status", self._status)
        self._note(f"status: {self._status}" + (f" at step {e['step']}" if e.get("step") is not None else ""))
        self._dirty.add("status")

    def _on_ended(self, e: dict) -> None:
        self._status = e.get("status", "finished")
        self._summary = e.get("summary") or _runs.summary(self.run) or {}
        self._note(f"ended: {self._status}" + (f" ({self._reason})" if self._reason else ""))
        if self._status == "failed":
            for line in _runs.log_tail(self.run, self._log_lines):
                self._note(line, "error")
        self._dirty.update(("status", "summary"))

    def _note(self, line: str, level: Optional[str] = None) -> None:
        self._log.append((level or "info", line))
        self._dirty.add("log")

    # the run's numbers, read from its state

    @property
    def _step(self) -> int:
        return self.state.step

    @property
    def _max_steps(self) -> int:
        return self.state.max_steps

    @property
    def _reason(self) -> Optional[str]:
        return self.state.reason

    # ---- drawing --------------------------------------------------------------

    def _render(self) -> None:
        filled = [axis for axis, streams in self._empty_axes.items() if any(st.total for st in streams)]
        if filled:
            with self.figure.batch_update():
                for axis in filled:
                    self.figure.layout[axis].autorange = True
                    del self._empty_axes[axis]
        push(self.figure, list(self._streams.values()))
        sent = self._meter.take()
        self._updates += 1
        self._history.append((self._step, sent))
        self._render_progress()
        self._render_text()

    def _render_text(self) -> None:
        if "status" in self._dirty:
            self._render_status()
        if "log" in self._dirty:
            lines = list(self._log)[-self._log_lines:]
            # column-reverse keeps the box scrolled to its newest line; line-height is set because frontends'
            # page styles (Voila, the html manager) otherwise space <pre> lines twice as far apart
            self.log_view.value = (
                "<div style='display:flex;flex-direction:column-reverse;max-height:14em;overflow:auto'>"
                "<pre style='font-size:0.8em;line-height:1.35;margin:0'>"
                + "\n".join(f"<span style='color:#c62828'>{esc(t)}</span>" if lv == "error" else esc(t)
                            for lv, t in lines) + "</pre></div>"
            )
        if "samples" in self._dirty and self._samples:
            rows = self._samples.get("samples") or []
            self.samples_view.value = (f"<b>Samples at step {esc(self._samples.get('step'))}</b>"
                                       + table(rows[:8], ["prompt", "output"], limit=400, css_class="ftkit-samples"))
        if "summary" in self._dirty and self._summary is not None:
            self.summary_card.value = summary_html(self._summary, self._status, self._reason)
            self.summary_card.layout.display = "block"
        self._dirty.clear()

    def _render_progress(self) -> None:
        total = max(self._max_steps or 0, self._step, 1)
        if self.progress.max != total:
            self.progress.max = total
        self.progress.value = min(self._step, total)
        eta = None
        if self._start_elapsed and self._elapsed is not None and self._step > self._start_elapsed[1]:
            per_step = (self._elapsed - self._start_elapsed[0]) / (self._step - self._start_elapsed[1])
            eta = per_step * max(0, total - self._step)
        done = self._status in ("finished", "failed", "stopped")
        pct = 100 * self._step / total if self._max_steps else 0
        text = f"step {self._step:,} / {self._max_steps:,} ({pct:.0f} %)" if self._max_steps else f"step {self._step:,}"
        if self._elapsed is not None:
            text += f" &middot; elapsed {duration(self._elapsed)}"
        if eta is not None and not done:
            text += f" &middot; ETA {duration(eta)}"
        text += memory_text(self.state)
        self.progress_label.value = text
        self.progress.bar_style = {"finished": "success", "failed": "danger", "stopped": "warning"}.get(self._status, "")

    def fit(self) -> None:
        """Size the plots to the width the page gives them (done on every status change)."""
        fit_width(self.figure)

    def _render_status(self) -> None:
        self.fit()
        status = self._status
        color = STATUS_COLORS.get(status, "#333")
        config = _runs.config(self.run)
        what = ""
        if config is not None:
            what = f"{esc(config.method_spec.title)} &middot; {esc(config.task.name)} &middot; {esc(config.model_name)}"
        self.status_label.value = (
            f"<b>{esc(_runs.run_id(self.run))}</b> &nbsp;{what}&nbsp; "
            f"<span class='ftkit-status-text' style='color:{color};font-weight:bold'>{esc(status)}</span>"
        )
        if config is not None and status in ("queued", "starting"):
            from ..launch import join_commands

            joins = join_commands(config, _runs.run_path(self.run)) if _runs.run_path(self.run) else []
            if joins:
                self.status_label.value += ("<br>waiting for the other machines: on each, paste "
                                            + " ; ".join(f"<code>{esc(j)}</code>" for j in joins))
        active = status in ACTIVE
        self.stop_button.disabled = not active or status == "stopping"
        self.pause_button.disabled = status != "running"
        self.resume_button.disabled = status != "paused"
        self.save_button.disabled = status not in ("running", "paused")
        if status != self._told:
            self._told = status
            for callback in list(self._status_callbacks):
                callback(status)

    def on_status(self, callback) -> None:
        """Call ``callback(status)`` whenever the run's status as drawn here changes."""
        self._status_callbacks.append(callback)

    # ---- actions ----------------------------------------------------------------

    def _act(self, action: str) -> None:
        with self._lock:
            self._act_locked(action)

    def _act_locked(self, action: str) -> None:
        method = getattr(self.run, action, None)
        if method is None:
            self._note(f"{action}: this run cannot be controlled from here", "error")
        else:
            try:
                method()
                self._note(f"requested {action.replace('_', ' ')}")
                if action == "save_checkpoint":
                    self._note("the checkpoint is written after the current step")
            except Exception as exc:  # show, never raise into the notebook's event loop
                self._note(f"{action} failed: {exc}", "error")
        self._status = _runs.status(self.run, self._status)
        self._dirty.add("status")
        self._render_text()

    # ---- state for tests and benchmarks -----------------------------------------

    @property
    def status(self) -> str:
        return self._status

    @property
    def stats(self) -> dict:
        """Updates sent, points per trace on screen, and bytes of plot data per update."""
        sizes = [b for _, b in self._history]
        return {
            "events": self._events,
            "updates": self._updates,
            "flushes": self._feed.flushes,
            "points": {s.name: s.points for s in self._streams.values()},
            "points_total": {s.name: s.total for s in self._streams.values()},
            "bytes_last": sizes[-1] if sizes else 0,
            "bytes_max": max(sizes) if sizes else 0,
            "bytes_mean": sum(sizes) / len(sizes) if sizes else 0,
            "bytes_total": self._meter.total,
            "bytes_by_step": list(self._history),
            "feed_error": self._feed.error,
        }

    def detach(self) -> None:
        """Stop listening to the run (the widget keeps what it shows)."""
        if self._unsubscribe is not None:
            try:
                self._unsubscribe()
            except Exception:
                pass
            self._unsubscribe = None
        self._feed.close()

    def close(self) -> None:
        self.detach()
        super().close()


def summary_html(summary: dict, status: str, reason: Optional[str]) -> str:
    """The end-of-run card."""
    s = read_summary(summary or {})
    metrics = s.get("metrics") or {}
    best = s.get("best") or {}
    pct = s.get("trainable_pct")
    peak = s.get("peak_cuda_mb") or s.get("peak_rss_mb")
    rows = [
        ("status", f"{status}" + (f" ({reason})" if reason else "")),
        ("steps", f"{number(s.get('steps'))} / {number(s.get('max_steps'))}"),
        ("loss", f"{number(s.get('loss_first'))} &rarr; {number(s.get('loss_last'))}"),
        ("metrics", ", ".join(f"{esc(k)} {number(v)}" for k, v in metrics.items()) or "-"),
        ("best", f"{esc(best.get('metric'))} {number(best.get('value'))} at step {number(best.get('step'))}" if best else "-"),
        ("trainable parameters", f"{number(s.get('trainable_params'))} of {number(s.get('total_params'))}"
                                 + (f" ({pct:.3f} %)" if isinstance(pct, (int, float)) else "")),
        ("wall time", f"{duration(s.get('wall_s'))} (training {duration(s.get('train_s'))})"),
        ("speed", f"{number(s.get('s_per_step'))} s/step, {number(s.get('tokens_per_s'))} tokens/s"),
        ("peak memory", f"{number(peak)} MB ({'CUDA allocated' if s.get('peak_cuda_mb') else 'process RSS'})"
                        if peak else "-"),
        ("the run's own memory", f"{number(s.get('run_peak_mb'))} MB (predicted {number(s.get('predicted_peak_mb'))} MB)"
                                 if s.get("run_peak_mb") is not None else "-"),
        ("saved to", esc(s.get("final_dir") or s.get("checkpoint") or "-")),
    ]
    color = STATUS_COLORS.get(status, "#333")
    body = "".join(f"<tr><td style='padding:1px 10px 1px 0;color:#555'>{k}</td><td>{v}</td></tr>" for k, v in rows)
    return (f"<div style='border:1px solid {color};border-left:6px solid {color};padding:6px 10px;margin:4px 0'>"
            f"<b>Run summary</b><table style='font-size:0.9em'>{body}</table></div>")


def memory_text(state) -> str:
    """Memory per rank, and per machine for a multi-node run, for the progress line ('' before any)."""
    ranks = [r for r in (state.rank_rss_mb or []) if r is not None]
    if len(ranks) < 2:
        return ""
    text = " &middot; RSS per rank " + " / ".join(f"{r:.0f}" for r in ranks) + " MB"
    nodes = state.node_rss_mb
    if nodes:
        text += " &middot; per node " + ", ".join(f"{n}: {mb:.0f} MB" for n, mb in sorted(nodes.items()))
    return text
