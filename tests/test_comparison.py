"""Comparisons: planted differences are found, planted nulls are not, one seed cannot tell, the
learning-rate search finds the good rate, and the same comparison reproduces its curves.

Real (tiny) runs: full fine-tuning of the random-init tiny Llama on the domain task for a few steps,
where a learning rate 100x too small leaves the evaluation loss clearly higher.
"""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ftkit.comparison import Budget, LrSearch, Study
from ftkit.comparison import plan as P
from ftkit.comparison import stats as S
from ftkit.config import RunConfig
from ftkit.controller import Controller
from ftkit.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
GOOD, SLOW = 1e-3, 1e-5


def tiny(**changes) -> RunConfig:
    base = {
        "name": "cmp", "model.name_or_path": "builtin:tiny-llama", "task.name": "domain", "method.name": "full",
        "data.max_train_samples": 32, "data.max_eval_samples": 8, "training.max_steps": 8,
        "training.batch_size": 8, "training.max_seq_length": 32, "training.learning_rate": GOOD,
        "training.logging_steps": 1, "training.eval_steps": 4,
    }
    return RunConfig().update({**base, **changes})


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """good, the same under another name, and 100x too small a learning rate; 3 seeds each."""
    controller = Controller(str(tmp_path_factory.mktemp("runs")))
    arms = {"good": {}, "good-copy": {"method.name": "full"}, "slow": {"training.learning_rate": SLOW}}
    return Study(tiny(), arms, seeds=3, budget="8 steps", search=False, controller=controller).run()


def test_importing_the_comparison_loads_no_training_stack():
    code = ("import sys, ftkit.comparison, ftkit.comparison.report, ftkit.comparison.results; "
            "print([m for m in ('torch', 'transformers', 'peft') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_a_planted_difference_is_found_and_a_planted_null_is_not(planted):
    assert all(e["run"].status == "finished" for e in planted.entries) and len(planted.entries) == 9
    v = planted.verdict()
    assert v["enough"] and v["seeds"] == 3 and v["test"] == "Welch's t-test"
    assert v["best"] in ("good", "good-copy") and v["metric"] == "perplexity"
    assert v["per_label"]["slow"].startswith("higher than")  # perplexity: higher is worse
    other = "good-copy" if v["best"] == "good" else "good"
    assert v["per_label"][other].startswith("indistinguishable")
    assert "Welch's t-test" in v["text"] and "3 seeds" in v["text"]
    slow = v["pairs"]["slow"]
    assert slow["p"] < 0.05 and slow["lo"] > 0  # the whole interval of the difference is above 0


def test_same_seed_same_data_order_across_methods(planted):
    by = {(e["arm"], e["seed"]): e["run"] for e in planted.entries}
    assert {e["seed"] for e in planted.entries} == {42, 43, 44}
    for seed in (42, 43, 44):
        assert by[("good", seed)].config.training.seed == seed == by[("slow", seed)].config.training.seed
        assert by[("good", seed)].steps() == by[("good-copy", seed)].steps()  # same data, same seed: same curve
    assert by[("good", 42)].steps() != by[("good", 43)].steps()


def test_the_table_curves_and_exports_carry_the_verdict(planted, tmp_path):
    rows = {r["method"]: r for r in planted.table()}
    assert rows["slow"]["seeds"] == 3 and rows["slow"]["final_metric_pm"] > 0
    assert rows["good"]["trainable_params"] > 0 and rows["good"]["s_per_step"] > 0
    curves = planted.curves()["arms"]["good"]
    band = curves["loss"]
    assert band["seeds"] == 3 and band["x"] == list(range(1, 9))
    assert all(lo <= m <= hi for lo, m, hi in zip(band["lo"], band["mean"], band["hi"]))
    frame = planted.frame()
    assert "verdict" in frame.columns and frame.attrs["verdict"] == planted.verdict()["text"]
    with open(planted.to_csv(tmp_path / "c.csv")) as f:
        table = list(csv.DictReader(f))
    assert [r["row"] for r in table].count("run") == 9 and table[-1]["row"] == "verdict"
    assert "Welch" in table[-1]["method"]
    text = planted.to_html(tmp_path / "c.html").read_text()
    assert "Welch" in text and "transformers" in text and "Environment" in text and 'src="https://cdn' not in text
    assert "indistinguishable" in planted.text()


def test_the_same_comparison_reproduces_every_curve(planted, tmp_path):
    again = Study(tiny(), {"good": {}}, seeds=2, budget=8, search=False,
                  controller=Controller(str(tmp_path / "again"))).run()
    first = {e["seed"]: e["run"] for e in planted.entries if e["arm"] == "good"}
    for e in again.entries:
        old = first[e["seed"]]
        assert e["run"].steps() == old.steps()
        assert [x["metrics"] for x in e["run"].events if x["type"] == "eval"] == \
               [x["metrics"] for x in old.events if x["type"] == "eval"]


def test_one_seed_cannot_tell():
    v = S.verdict({"a": [0.9], "b": [0.5]}, "accuracy")
    assert not v["enough"] and v["text"].startswith("Not enough seeds to tell")
    assert v["per_label"] == {"a": "not enough seeds to tell", "b": "not enough seeds to tell"}


def test_stats_against_scipy_and_words():
    from scipy import stats

    a, b = [0.96, 0.95, 0.97, 0.96], [0.88, 0.90, 0.87, 0.89]
    w = S.welch(a, b)
    assert w["p"] == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert w["lo"] < w["diff"] < w["hi"] and w["lo"] > 0
    v = S.verdict({"lora": a, "ia3": b}, "accuracy", extras={
        "lora": {"trainable_params": 4000, "peak_memory_mb": 100}, "ia3": {"trainable_params": 1000,
                                                                           "peak_memory_mb": 88}})
    assert "ia3 is lower than lora by 0.075" in v["text"]
    assert "trains 4× fewer parameters" in v["text"] and "12 % less memory" in v["text"]


def test_budgets_become_equal_steps_or_flops_and_parse():
    c = tiny()
    assert Budget.parse("2e3 tokens") == Budget("tokens", 2000) and Budget.parse("90s").kind == "seconds"
    assert Budget.parse("2 min").amount == 120 and Budget.parse(None, default_steps=7) == Budget("steps", 7)
    with pytest.raises(ConfigError):
        Budget.parse("ten parsecs")
    assert P.steps_for(c, Budget("tokens", 8 * 32 * 5)) == 5
    lora = c.update({"method.name": "lora"})
    flops = P.x_scale(c, Budget("flops", 1e12)) * 10
    assert P.steps_for(c, Budget("flops", flops)) == 10 and P.steps_for(lora, Budget("flops", flops)) > 10
    # the default seeds fit the time budget
    study = Study(c, ["full", "lora"], budget=8, search=False, time_budget_s=10_000, controller=object())
    assert len(study.seeds) == P.MAX_SEEDS
    short = Study(c, ["full", "lora"], budget=8, search=False, time_budget_s=1, controller=object())
    assert len(short.seeds) == 1 and "seed(s) per method fit" in short.notes[0]


def test_the_learning_rate_search_picks_the_good_rate_on_held_out_rows(tmp_path):
    controller = Controller(str(tmp_path / "runs"))
    study = Study(tiny(), ["full"], seeds=1, budget=8, controller=controller,
                  search=LrSearch(grid=[1e-5, 1e-3, 1e-1], fraction=0.75))
    study.start_search()
    assert study.finish_search() == {"full": 1e-3}
    tries = [e["run"] for e in study.entries if e["phase"] == "search"]
    assert len(tries) == 3 and all(r.config.training.max_steps == 6 for r in tries)
    config = tries[0].config
    assert config.data.source.endswith("search-train.jsonl") and config.data.eval_source.endswith("search-val.jsonl")
    from ftkit.data import load_rows

    original_train, _ = load_rows(tiny())
    train_rows, val_rows = load_rows(config)
    # the search splits exactly the training rows: the evaluation split is never trained or scored on
    key = lambda rows: sorted(json.dumps(r, sort_keys=True) for r in rows)  # noqa: E731
    assert key(train_rows + val_rows) == key(original_train) and len(val_rows) == round(0.2 * len(original_train))
    assert study.curves()["search"]["full"][1][0] == 1e-3


def test_the_cli_compares_and_writes_the_verdict(tmp_path, capsys):
    from ftkit.cli import main

    config = tmp_path / "tiny.yaml"
    tiny().to_yaml(config)
    code = main(["compare", str(config), "--methods", "full,lora", "--seeds", "2", "--budget", "4 steps",
                 "--no-search", "--runs-dir", str(tmp_path / "runs"), "--csv", str(tmp_path / "c.csv"),
                 "--html", str(tmp_path / "c.html")])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "comparing full, lora over 2 seed(s) (42, 43), 4 steps each" in out
    assert "Verdict:" in out and "Welch's t-test" in out and "wall time:" in out
    assert "Welch" in (tmp_path / "c.csv").read_text() and "Welch" in (tmp_path / "c.html").read_text()


def test_a_seconds_budget_stops_each_run_on_time_and_plots_against_seconds():
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _fakes import FakeController, training_events

    study = Study(tiny(), ["full", "lora"], seeds=2, budget="1.5s", search=False, controller=FakeController())
    runs = study.start_final()
    assert len(runs) == 4 and {r.config.training.max_steps for r in runs} == {8}  # the config's steps: a cap
    for run in runs:
        run.play(training_events(30, eval_every=10, s_per_step=0.1))
        assert "stop" in run.calls  # asked to stop once 1.5 s had been trained
    band = study.curves()["arms"]["full"]["loss"]
    assert study.curves()["axis"] == "seconds" and band["x"][-1] == pytest.approx(3.0)
