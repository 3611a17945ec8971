"""``AdvisorWidget``: pick a task, a model and a GPU budget; see what fits, ranked, and which table claims hold.

Stock ipywidgets only; the advice is computed from config files alone (no torch).
"""
from __future__ import annotations

from typing import Optional

from ._html import esc


def _models() -> list[str]:
    from ..models import BUILTINS
    from ..shapes import shipped_models

    return shipped_models() + sorted(BUILTINS)


def advice_html(advice) -> str:
    """The advice as an HTML table of options and a list of flagged claims."""
    rows = []
    for i, option in enumerate(advice.ranked, 1):
        d = option.to_dict()
        how = ", ".join(d["adjustments"]) or "as is"
        rows.append(f"<tr><td>{i}</td><td>{esc(d['label'])}</td><td>{esc(how)}</td>"
                    f"<td>{d['peak_gb']:.1f}</td><td>{d['trainable_pct']:.3g} %</td>"
                    f"<td>{d['seconds_per_step']:.2g}</td><td>{esc(d['quality'])}</td></tr>")
    for option in advice.rejected:
        rows.append(f"<tr style='color:#999'><td>-</td><td>{esc(option.label)}</td><td>does not fit</td>"
                    f"<td>{option.estimate.peak_gb:.1f}</td><td></td><td></td><td></td></tr>")
    head = ("<tr><th>#</th><th>configuration</th><th>needs</th><th>GiB/GPU</th><th>trainable</th>"
            "<th>s/step</th><th>expected quality</th></tr>")
    flagged = "".join(f"<li>{esc(c.line())}</li>" for c in advice.checks if not c.holds)
    return (f"<b>{esc(advice.task)}</b> with <b>{esc(advice.model)}</b> on {advice.gpus} x "
            f"{advice.gpu_memory_gb:g} GiB<table>{head}{''.join(rows)}</table>"
            + (f"<p>Table claims that do not hold by these numbers:</p><ul>{flagged}</ul>" if flagged else ""))


class AdvisorWidget:
    """A small form: task, model, GPUs and memory per GPU; the Advise button fills in the ranked answer."""

    def __init__(self, task: str = "chat", model: str = "microsoft/Phi-3-mini-4k-instruct", gpus: int = 1,
                 gpu_memory_gb: float = 24):
        import ipywidgets as w

        from ..tasks import tasks

        models = _models()
        self.task = w.Dropdown(options=[t.name for t in tasks], value=task, description="task")
        self.model = w.Combobox(options=models, value=model, description="model", ensure_option=False)
        self.gpus = w.BoundedIntText(value=gpus, min=1, max=1024, description="GPUs")
        self.memory = w.BoundedFloatText(value=gpu_memory_gb, min=1, max=1024, description="GiB per GPU")
        self.button = w.Button(description="Advise", button_style="primary")
        self.output = w.HTML()
        self.button.on_click(lambda _: self.refresh())
        self.widget = w.VBox([w.HBox([self.task, self.model]), w.HBox([self.gpus, self.memory, self.button]),
                              self.output])
        self.advice = None

    def refresh(self) -> Optional[object]:
        from ..advisor import advise

        try:
            self.advice = advise(self.task.value, self.model.value, gpus=self.gpus.value,
                                 gpu_memory_gb=self.memory.value)
        except Exception as exc:  # an unknown model or one the estimator cannot describe
            self.advice = None
            self.output.value = f"<span style='color:#b00'>{esc(exc)}</span>"
            return None
        self.output.value = advice_html(self.advice)
        return self.advice

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)
