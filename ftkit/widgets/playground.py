"""``Playground``: one input, the base model and tuned runs side by side, each output in its own column.

Generated text for generation tasks, probability bars for classification,
entities highlighted inline for NER, the answer highlighted in its context
for QA. Predictions run in a background thread (the kernel stays free) and
the training stack is imported there, so building the widget stays light.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Iterable, Optional

import ipywidgets as widgets

from ..predict import PredictError, Predictor
from ._html import esc

ENTITY_COLORS = {"PER": "#ffd8a8", "ORG": "#c3e6cb", "LOC": "#bfdbfe", "MISC": "#e9d5ff"}
SPARE_COLORS = ["#fde68a", "#fbcfe8", "#a5f3fc", "#d9f99d", "#fecaca", "#ddd6fe"]
MAX_BARS = 12
PLACEHOLDERS = {"generation": "prompt", "classification": "text to classify", "ner": "text to tag",
                "qa": "question"}


# ---- rendering one result as HTML -----------------------------------------------------------------


def entity_color(label: str) -> str:
    """A fixed colour per entity type: the usual ones by name, others by a stable hash."""
    return ENTITY_COLORS.get(label) or SPARE_COLORS[sum(map(ord, label)) % len(SPARE_COLORS)]


def highlight(text: str, spans: list[tuple[int, int, str]]) -> str:
    """``text`` escaped, each (start, end, mark) span put in its mark's ``{inner}``; overlapping spans are skipped."""
    out, at = [], 0
    for start, end, mark in sorted(spans):
        if start < at:
            continue
        out += [esc(text[at:start]), mark.replace("{inner}", esc(text[start:end]), 1)]
        at = end
    out.append(esc(text[at:]))
    return "".join(out)


def render_generation(result, prompt: Optional[str] = None) -> str:
    """The generated text, after the prompt in grey when the model continues it (domain, creative)."""
    shown = f"<span class='ftkit-prompt' style='color:#888'>{esc(prompt)}</span>" if prompt else ""
    body = esc(result.text) if result.text else "<i style='color:#888'>(nothing: the model stopped at once)</i>"
    return f"<div class='ftkit-generated' style='white-space:pre-wrap;line-height:1.4'>{shown}{body}</div>"


def render_classification(result) -> str:
    """The label, then one bar per label, most probable first."""
    ranked = sorted(result.probabilities.items(), key=lambda kv: -kv[1])
    rows = []
    for name, p in ranked[:MAX_BARS]:
        top = name == result.label
        color = "#2e7d32" if top else "#90a4ae"
        rows.append(
            "<div class='ftkit-prob-row' style='display:flex;align-items:center;gap:6px;margin:3px 0'>"
            f"<span class='ftkit-prob-label' style='flex:0 0 35%;overflow:hidden;text-overflow:ellipsis;"
            f"white-space:nowrap;{'font-weight:bold' if top else ''}' title='{esc(name)}'>{esc(name)}</span>"
            "<span style='flex:1;background:#eceff1;height:14px;border-radius:3px;overflow:hidden'>"
            f"<span class='ftkit-prob-bar' data-p='{p:.6f}' style='display:block;height:100%;"
            f"width:{100 * p:.1f}%;background:{color}'></span></span>"
            f"<span class='ftkit-prob-value' style='flex:0 0 4.5em;text-align:right'>{100 * p:.1f} %</span></div>"
        )
    more = len(ranked) - MAX_BARS
    if more > 0:
        rows.append(f"<div style='color:#888'>+ {more} more labels</div>")
    return (f"<div class='ftkit-prob-top'>label: <b>{esc(result.label)}</b></div>"
            f"<div class='ftkit-probs'>{''.join(rows)}</div>")


def render_entities(result, text: str) -> str:
    """The input with each entity marked in its type's colour and labelled."""
    spans = []
    for e in result.entities:
        mark = (f"<mark class='ftkit-entity' data-label='{esc(e.label)}' title='{esc(e.label)} {e.score:.2f}' "
                f"style='background:{entity_color(e.label)};padding:1px 3px;border-radius:4px'>" "{inner}"
                f"<span class='ftkit-entity-label' style='font-size:0.7em;font-weight:bold;margin-left:4px;"
                f"color:#37474f'>{esc(e.label)}</span></mark>")
        spans.append((e.start, e.end, mark))
    note = "" if spans else "<div style='color:#888'><i>no entities found</i></div>"
    return f"<div class='ftkit-ner' style='line-height:2'>{highlight(text, spans)}</div>{note}"


def render_answer(result, context: str) -> str:
    """The answer and its score, then the context with the answer marked."""
    if not result.answer:
        return "<div class='ftkit-answer-line'><i>no answer found</i></div>"
    mark = "<mark class='ftkit-answer' style='background:#fff176;padding:1px 2px;border-radius:3px'>{inner}</mark>"
    return (f"<div class='ftkit-answer-line'>answer: <b>{esc(result.answer)}</b> "
            f"<span style='color:#666'>(score {result.score:.2f})</span></div>"
            f"<div class='ftkit-context' style='color:#444;margin-top:4px;line-height:1.5'>"
            f"{highlight(context, [(result.start, result.end, mark)])}</div>")


def render(result, text: str, context: Optional[str] = None, prompt: bool = False) -> str:
    """HTML for any prediction result (``ftkit.predict``)."""
    if result.kind == "classification":
        return render_classification(result)
    if result.kind == "ner":
        return render_entities(result, text)
    if result.kind == "qa":
        return render_answer(result, context or "")
    return render_generation(result, text if prompt else None)


def render_error(message: str) -> str:
    return f"<div class='ftkit-playground-error' style='color:#c62828'>&#9888; {esc(message)}</div>"


# ---- the widget ---------------------------------------------------------------------------------


class _Column(widgets.VBox):
    """One model's column: a title and its latest output."""

    def __init__(self, predictor: Any):
        super().__init__(layout=widgets.Layout(flex="1 1 0", min_width="220px", padding="6px 8px",
                                               border="1px solid #ddd", margin="0 6px 6px 0"))
        self.add_class("ftkit-playground-column")
        self.predictor = predictor
        self.result: Any = None
        self.error: Optional[str] = None
        self.title = widgets.HTML(_title(predictor))
        self.title.add_class("ftkit-playground-title")
        self.output = widgets.HTML("<i style='color:#888'>press Run</i>")
        self.output.add_class("ftkit-playground-output")
        self.footer = widgets.HTML()
        self.footer.add_class("ftkit-playground-footer")
        self.children = [self.title, self.output, self.footer]


def _title(predictor: Any) -> str:
    if predictor.is_base:
        return (f"<b>base model</b><br><span style='color:#666'>{esc(predictor.config.model_name)}, "
                "not tuned</span>")
    detail = [predictor.method]
    try:
        from ..store import RunRecord

        record = RunRecord(predictor.path)
        summary = record.summary or {}
        detail.append(record.status)
        best = summary.get("best") or {}
        if best.get("value") is not None:
            detail.append(f"{best['metric']} {best['value']:.3g}")
    except Exception:  # a title never stops the playground
        pass
    return f"<b>{esc(predictor.name)}</b><br><span style='color:#666'>{esc(' · '.join(detail))}</span>"


def _predictors(runs: Any, runs_dir: Optional[str]) -> list:
    items = [runs] if isinstance(runs, (str, bytes)) or not isinstance(runs, Iterable) else list(runs)
    return [r if isinstance(r, Predictor) else Predictor(r, runs_dir=runs_dir) for r in items]


class Playground(widgets.VBox):
    """The same input to the base model and to each run in ``runs`` (Runs, records, ids or folders).

    ``base``: add a column for the untuned base model (one per distinct base).
    All runs must share one task: comparing a classifier with a tagger means nothing.
    """

    def __init__(self, runs: Any, base: bool = True, *, runs_dir: Optional[str] = None, text: str = "",
                 context: str = "", **kwargs):
        super().__init__(**kwargs)
        self.add_class("ftkit-playground")
        tuned = _predictors(runs, runs_dir)
        if not tuned:
            raise ValueError("runs: give at least one run (a Run, a run id or a run folder)")
        tasks = sorted({p.task for p in tuned})
        if len(tasks) > 1:
            which = ", ".join(f"{p.name} is {p.task}" for p in tuned)
            raise ValueError(f"runs: a playground compares runs of one task, got {len(tasks)} ({which}); "
                             "make one playground per task")
        bases: dict = {}
        if base:
            for p in tuned:
                bases.setdefault((p.config.model_name, p.config.bits), Predictor.base(p.config))
        self.predictors = list(bases.values()) + tuned
        self.task, self.kind = tuned[0].task, tuned[0].kind
        self._thread: Optional[threading.Thread] = None
        self._build(text, context)

    # ---- layout ---------------------------------------------------------------------------------

    def _build(self, text: str, context: str) -> None:
        wide = widgets.Layout(width="100%")
        self.text = widgets.Textarea(value=text, placeholder=PLACEHOLDERS[self.kind], rows=2, layout=wide)
        self.text.add_class("ftkit-playground-text")
        self.context = widgets.Textarea(value=context, placeholder="context: the passage that holds the answer",
                                        rows=4, layout=wide)
        self.context.add_class("ftkit-playground-context")
        defaults = self.predictors[-1].defaults()
        small = {"style": {"description_width": "initial"}, "layout": widgets.Layout(width="190px")}
        self.max_new_tokens = widgets.BoundedIntText(value=defaults.get("max_new_tokens", 32), min=1, max=4096,
                                                     description="max new tokens", **small)
        self.temperature = widgets.BoundedFloatText(value=defaults.get("temperature", 0.0), min=0, max=5, step=0.1,
                                                    description="temperature", **small)
        self.seed = widgets.BoundedIntText(value=defaults.get("seed", 0), min=0, max=2**31 - 1,
                                           description="seed", **small)
        self.options = widgets.HBox([self.max_new_tokens, self.temperature, self.seed])
        self.options.add_class("ftkit-playground-options")
        self.run_button = widgets.Button(description="Run", icon="play", button_style="success",
                                         layout=widgets.Layout(width="auto"))
        self.run_button.add_class("ftkit-playground-run")
        self.run_button.on_click(lambda _: self.run())
        self.status = widgets.HTML()
        self.status.add_class("ftkit-playground-status")
        self.columns = [_Column(p) for p in self.predictors]
        row = widgets.HBox(self.columns, layout=widgets.Layout(flex_flow="row wrap", align_items="stretch",
                                                               width="100%"))
        row.add_class("ftkit-playground-columns")
        head = widgets.HTML(f"<b>Playground</b> &middot; {esc(self.task)}: the same input to "
                            f"{len(self.columns)} model{'s' if len(self.columns) != 1 else ''}")
        inputs = [self.text] + ([self.context] if self.kind == "qa" else [])
        inputs += [self.options] if self.kind == "generation" else []
        self.children = [head, *inputs, widgets.HBox([self.run_button, self.status]), row]

    # ---- running --------------------------------------------------------------------------------

    def _request(self) -> tuple[str, dict]:
        if self.kind == "qa":
            return self.text.value, {"context": self.context.value}
        if self.kind == "generation":
            return self.text.value, {"max_new_tokens": self.max_new_tokens.value,
                                     "temperature": self.temperature.value, "seed": self.seed.value}
        return self.text.value, {}

    def run(self, wait: bool = False) -> Optional[threading.Thread]:
        """Predict with every column's model in a background thread; ``wait=True`` blocks until all are done."""
        if self._thread is not None and self._thread.is_alive():
            if wait:
                self._thread.join()
            return self._thread
        text, options = self._request()
        missing = "question" if self.kind == "qa" else "text"
        if not text.strip():
            self._say(f"type a {missing} first", error=True)
            return None
        if self.kind == "qa" and not options["context"].strip():
            self._say("paste a context: the answer is found in it", error=True)
            return None
        self.run_button.disabled = True
        for column in self.columns:
            column.output.value = "<i style='color:#888'>waiting&hellip;</i>"
            column.footer.value = ""
        self._thread = threading.Thread(target=self._work, args=(text, options), daemon=True)
        self._thread.start()
        if wait:
            self._thread.join()
        return self._thread

    def _work(self, text: str, options: dict) -> None:
        started, failed = time.perf_counter(), 0
        try:
            for i, column in enumerate(self.columns):
                name = column.predictor.name
                self._say(f"running {esc(name)} ({i + 1} of {len(self.columns)})&hellip;")
                column.output.value = "<i style='color:#888'>loading and running&hellip;</i>"
                t0 = time.perf_counter()
                try:
                    column.result, column.error = column.predictor.predict(text, **options), None
                    prompt = self.task not in ("chat", "translation")
                    column.output.value = render(column.result, text, options.get("context"), prompt=prompt)
                except PredictError as exc:
                    failed += 1
                    column.result, column.error = None, str(exc)
                    column.output.value = render_error(column.error)
                except Exception as exc:  # shown in its column; the others still run
                    failed += 1
                    column.result, column.error = None, f"{type(exc).__name__}: {exc}"
                    column.output.value = render_error(column.error)
                column.footer.value = f"<span style='color:#888;font-size:0.85em'>{time.perf_counter() - t0:.2f} s</span>"
            took = time.perf_counter() - started
            note = f", {failed} failed" if failed else ""
            self._say(f"done: {len(self.columns)} model{'s' if len(self.columns) != 1 else ''} in {took:.1f} s{note}",
                      error=bool(failed))
        finally:
            self.run_button.disabled = False

    def _say(self, message: str, error: bool = False) -> None:
        color = "#c62828" if error else "#555"
        self.status.value = f"<span style='color:{color}'>{message}</span>"
