"""A new method and a new task are one new file each, and nothing else changes.

Each file below is written to a folder put on ``ftkit.methods``' (``ftkit.tasks``')
search path before ftkit reads its registries: exactly how a new file under
ftkit/methods/ or ftkit/tasks/ is found. One fresh interpreter then takes
both through the form, the estimate, the plan, the advisor, the CLI's lists,
a short training run, predict and export; the tests check what it reports.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # one fresh interpreter trains, predicts and exports

METHOD = '''
"""Values-only LoRA: rank-r updates on the value projections alone."""
from ftkit.methods._base import AdapterOptions, MethodSpec, Trades, peft_apply
from ftkit.schema import field


class ValueLoraOptions(AdapterOptions):
    r: int = field(4, "Rank of each update.", ge=1, le=64)
    lora_alpha: int = field(8, "Scale of the update (alpha / r).", ge=1)
    target_modules: list[str] = field(["value"], "The value projections (bert's name for them).")


def params(shapes, options, ctx):
    from ftkit.shapes import per_module

    return per_module(shapes, options, "LORA", lambda m: options.r * (m.d_in + m.d_out))


SPECS = [MethodSpec(
    name="value_lora",
    title="Value LoRA",
    family="low-rank",
    summary="LoRA on the value projections only.",
    options=ValueLoraOptions,
    apply=peft_apply("LoraConfig"),
    trades=Trades("low", "lowest", "fast", "a one-file example"),
    peft_type="LORA",
    params=params,
    defaults={"training.learning_rate": 5e-3},
)]
'''

TASK = '''
"""Spam or not: short messages, two labels."""
import random

from ftkit.tasks._base import TaskSpec
from ftkit.tasks.classification import ClassificationOptions, label_names, prepare

SPAM = ["WIN a free prize now, click here", "Cheap pills, limited offer, buy now", "You won cash, claim it today"]
HAM = ["See you at lunch tomorrow", "The meeting moved to three", "Thanks for the notes from class"]


def builtin():
    rng = random.Random(0)
    rows = [{"text": t, "label": "spam"} for t in SPAM] + [{"text": t, "label": "ham"} for t in HAM]
    rows = rows * 8
    rng.shuffle(rows)
    return rows


SPECS = [TaskSpec(
    name="spam",
    title="Spam filter",
    summary="Spam or ham, one label per message.",
    model_kind="seq_cls",
    default_model="builtin:minilm",
    columns={"text": "the message", "label": "spam or ham"},
    metric="accuracy",
    greater_is_better=True,
    metrics=("accuracy", "f1"),
    options=ClassificationOptions,
    builtin=builtin,
    prepare=prepare,
    label_names=label_names,
    scenario="NLP tasks: text classification, NER, machine translation",
)]
'''

SCRIPT = r'''
import contextlib, io, json, sys
import ftkit.methods, ftkit.tasks

ftkit.methods.__path__.append(sys.argv[1])
ftkit.tasks.__path__.append(sys.argv[2])
runs_dir = sys.argv[3]
out = {}

from ftkit.widgets.form import ConfigForm

form = ConfigForm()
options = lambda path: [o[1] if isinstance(o, tuple) else o for o in form.fields[path].input.options]
out["form_methods"], out["form_tasks"] = options("method.name"), options("task.name")
form.set("method.name", "value_lora")
form.set("task.name", "spam")
out["form_fields"] = sorted(p for p in form._specs if p.startswith(("method.value_lora.", "task.spam.")))
out["form_learning_rate"] = form.get("training.learning_rate")
config = form.config.update({"runs_dir": runs_dir, "training.max_steps": 12, "training.batch_size": 8,
                             "training.max_seq_length": 32, "training.eval_steps": 0, "training.save_steps": 0,
                             "training.logging_steps": 4, "data.max_eval_samples": 8})

from ftkit.estimator import estimate

out["estimated_trainable"] = estimate(config).trainable_params

from ftkit.plan import plan

out["plan_trainable"] = plan(config)["trainable_params"]

from ftkit.advisor import advise

out["advice_scenario"] = advise("spam", "builtin:minilm").scenario.text

from ftkit.cli import main

for command in ("methods", "tasks"):
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        main([command, "--json"])
    out[f"cli_{command}"] = [row["name"] for row in json.loads(printed.getvalue())]

from ftkit.engine.train import train
from ftkit.store import RunStore

record = RunStore(runs_dir).create(config)
summary = train(config, record.path)
out["status"], out["trained_trainable"] = summary["status"], summary.get("trainable_params")

from ftkit.predict import Predictor

result = Predictor(record.path).predict("Claim your free prize now")
out["predicted_labels"] = sorted(result.probabilities)

from ftkit.export import export

exported = export(record.path, "merged")
out["export_checks"] = [check.passed for check in exported.checks]
out["export_files"] = exported.files
print("RESULT " + json.dumps(out))
'''


@pytest.fixture(scope="module")
def report(tmp_path_factory, _model_cache):
    root = tmp_path_factory.mktemp("one-file")
    for folder, name, source in (("methods", "value_lora", METHOD), ("tasks", "spam", TASK)):
        (root / folder).mkdir()
        (root / folder / f"{name}.py").write_text(source)
    env = {**os.environ, "FTKIT_CACHE": _model_cache, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parent.parent),
                                          os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(root / "methods"), str(root / "tasks"),
                           str(root / "runs")], env=env, capture_output=True, text=True, timeout=900)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert done.returncode == 0 and lines, done.stderr[-4000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_the_form_offers_the_new_method_and_task_with_their_options(report):
    assert "value_lora" in report["form_methods"] and "spam" in report["form_tasks"]
    assert {"method.value_lora.r", "method.value_lora.lora_alpha", "method.value_lora.target_modules"} \
        <= set(report["form_fields"])
    assert report["form_learning_rate"] == 5e-3  # the method's own usual value, from its spec


def test_the_cli_lists_them(report):
    assert "value_lora" in report["cli_methods"] and "spam" in report["cli_tasks"]


def test_the_estimate_and_plan_count_what_training_trains(report):
    assert report["status"] == "finished"
    assert report["estimated_trainable"] == report["trained_trainable"] == report["plan_trainable"] > 0


def test_the_advisor_reads_the_tasks_scenario_from_its_spec(report):
    assert report["advice_scenario"] == "NLP tasks: text classification, NER, machine translation"


def test_predict_and_export_take_the_new_run(report):
    assert report["predicted_labels"] == ["ham", "spam"]
    assert report["export_checks"] and all(report["export_checks"])
    assert any(name.endswith(".safetensors") for name in report["export_files"])
