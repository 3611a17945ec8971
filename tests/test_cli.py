"""The ftkit command: listings, config printing, a real training run, runs and show."""
import json
import subprocess
import sys

import pytest

from ftkit.cli import build_parser, main

COMMANDS = ["train", "config", "plan", "estimate", "advise", "runs", "show", "predict", "export", "methods", "tasks", "presets",
            "compare"]


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
