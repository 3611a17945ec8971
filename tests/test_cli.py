"""The ftkit command: listings, config printing, a real training run, runs and show."""
import json
import subprocess
import sys

import pytest

from ftkit.cli import build_parser, main

COMMANDS = ["train", "config", "plan", "estimate", "advise", "runs", "show", "predict", "export", "methods", "tasks", "presets",
            "handoff", "compare", "join"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    assert "usage: ftkit " + command in capsys.readouterr().out


def test_parser_knows_every_command():
    assert set(build_parser()._subparsers._group_actions[0].choices) == set(COMMANDS)


@pytest.mark.parametrize("command", ["methods", "tasks", "presets", "runs"])
def test_listings_as_json(command, capsys):
    assert main([command, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data or command == "runs"


def test_methods_filtered_by_task(capsys):
    main(["methods", "--task", "classification", "--json"])
    names = {m["name"] for m in json.loads(capsys.readouterr().out)}
    assert {"lora", "qlora", "dora", "full"} <= names


def test_config_applies_and_validates_set(capsys):
    assert main(["config", "--preset", "demo", "--set", "method.name=dora", "--set", "method.dora.r=4", "--json"]) == 0
    config = json.loads(capsys.readouterr().out)
    assert config["method"] == {"name": "dora", "dora": config["method"]["dora"]} and config["method"]["dora"]["r"] == 4
    assert main(["config", "--set", "method.lora.r=0"]) == 2
    assert "method.lora.r: must be >= 1, got 0" in capsys.readouterr().err


def test_train_then_runs_and_show_in_a_fresh_process(isolated_env):
    cmd = [sys.executable, "-m", "ftkit.cli"]
    trained = subprocess.run(
        cmd + ["train", "--preset", "demo", "--set", "training.max_steps=24", "--set", "training.eval_steps=0",
               "--set", "training.learning_rate=0.005", "--set", "data.max_eval_samples=48"],
        capture_output=True, text=True, timeout=600,
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    out = trained.stdout
    assert "step    24/24" in out and "eval @ 24: loss" in out and ": finished" in out
    runs = json.loads(subprocess.run(cmd + ["runs", "--json"], capture_output=True, text=True, check=True).stdout)
    assert len(runs) == 1 and runs[0]["status"] == "finished" and runs[0]["method"] == "lora"
    shown = subprocess.run(cmd + ["show", runs[0]["id"][-4:], "--json"], capture_output=True, text=True, check=True)
    detail = json.loads(shown.stdout)
    assert detail["summary"]["steps"] == 24 and detail["summary"]["metrics"]["accuracy"] > 0.7


def test_show_unknown_run_is_a_clear_error(capsys):
    assert main(["show", "no-such-run"]) == 2
    assert "no run 'no-such-run'" in capsys.readouterr().err


# ---- runs and show read every run as it is ----------------------------------------------------------


def test_runs_and_show_close_a_run_whose_worker_died(isolated_env, capsys):
    from _fakes import killed_run

    from ftkit.liveness import AWAY_REASON
    from ftkit.store import RunStore

    record = killed_run(RunStore())
    assert record.status == "running"
    assert main(["runs", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)[0]
    assert row["status"] == "failed" and row["reason"] == AWAY_REASON and row["best"] == "accuracy 1 @ 40"
    assert record.events()[-1]["type"] == "ended"
    other = killed_run(RunStore())
    assert main(["show", other.id]) == 0
    out = capsys.readouterr().out
    assert f"run {other.id} (failed)" in out and AWAY_REASON in out and "best eval accuracy 1 at step 40" in out


def test_show_reads_an_old_or_partial_summary_and_prints_the_config(isolated_env, capsys):
    from ftkit.config import RunConfig
    from ftkit.store import RunStore

    record = RunStore().create(RunConfig.preset("demo"))
    (record.path / "worker.json").write_text("{}")
    # what a 2-rank run killed by a signal left: no trainable_pct, no loss, no metrics
    (record.path / "summary.json").write_text(json.dumps({
        "run_id": record.id, "status": "failed", "reason": "rank 1 (pid 7) was killed by SIGKILL",
        "steps": 3, "trainable_params": 5, "total_params": 50, "measured_peak_mb": 315.0, "peak_rss_mb": 840.0}))
    assert main(["show", record.id[-9:-3]]) == 0  # a part from the middle of the id
    out = capsys.readouterr().out
    assert "rank 1 (pid 7) was killed by SIGKILL" in out and "trainable 5 of 50 (10.0 %)" in out
    assert "config:" in out and "name_or_path:" in out and "learning_rate:" in out  # the config its help promises
    assert "peak 840 MB process RSS" in out and "the run's own 315 MB" in out


def test_printer_prints_a_final_line_for_any_ended_event():
    import io

    from ftkit.cli import Printer
    from ftkit.events import make_event

    out = io.StringIO()
    printer = Printer(out)
    printer(make_event("started", max_steps=4, start_step=0))  # an older started event: no parameters
    printer(make_event("ended", status="failed", reason="rank 1 was killed by SIGKILL",
                       summary={"run_id": "r", "status": "failed", "reason": "rank 1 was killed by SIGKILL",
                                "trainable_params": 5, "total_params": 50}))
    assert printer.ended and "run r: failed (rank 1 was killed by SIGKILL)" in out.getvalue()


def test_ambiguous_run_ids_list_the_matches(isolated_env, capsys):
    from ftkit.config import RunConfig
    from ftkit.store import RunStore

    ids = [RunStore().create(RunConfig.preset("demo").update({"name": f"same-{i}"})).id for i in range(2)]
    assert main(["show", "same"]) == 2
    err = capsys.readouterr().err
    assert "matches 2 runs" in err and all(i in err for i in ids)


def test_runs_says_which_eval_best_is(isolated_env, capsys):
    from _fakes import killed_run

    from ftkit.store import RunStore

    killed_run(RunStore())
    assert main(["runs"]) == 0
    head = capsys.readouterr().out.splitlines()[0]
    assert "best eval (@ step)" in head and "saved model's eval" in head


def test_predict_on_a_failed_run_suggests_a_flag_that_exists(isolated_env, capsys):
    from _fakes import killed_run

    from ftkit.store import RunStore

    record = killed_run(RunStore())
    assert main(["predict", record.id, "great kettle"]) == 2
    err = capsys.readouterr().err
    assert "--checkpoint DIR" in err
    flags = {o for a in build_parser()._subparsers._group_actions[0].choices["predict"]._actions for o in a.option_strings}
    assert "--checkpoint" in flags


def test_join_refuses_a_run_that_is_not_multi_node(tmp_path, capsys):
    from ftkit.config import RunConfig
    from ftkit.store import RunStore

    record = RunStore(tmp_path / "runs").create(RunConfig())
    assert main(["join", str(record.path), "--node-rank", "1"]) == 2
    assert "is not a multi-node torchrun run" in capsys.readouterr().err
    assert main(["join", "no-such-run", "--node-rank", "1", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert "no-such-run" in capsys.readouterr().err
