"""The README's tables come from the registries, so they claim only what the suite tests."""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_method_and_task_tables_are_current():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme_tables.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_readme_first_screen_gives_the_two_commands_ci_runs():
    first_screen = "\n".join((ROOT / "README.md").read_text().splitlines()[:20])
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash setup.sh" in first_screen and "bash setup.sh" in ci
    assert ".venv/bin/python -m pytest" in first_screen and ".venv/bin/python -m pytest" in ci


# ---- every command the README shows ----------------------------------------------

#: run by CI itself (.ci/run), checked above
CI_COMMANDS = {"bash setup.sh", ".venv/bin/python -m pytest"}
#: training lines run as shown, capped at a few steps so the check stays quick
TRAIN_CAP = ["--set", "training.max_steps=2", "--set", "training.eval_steps=0", "--quiet"]


def readme_commands() -> list[str]:
    """Every line of the README's ``bash`` blocks (without its trailing comment) and every inline
    ``ftkit ...`` command; ``COMMAND`` stands for each subcommand."""
    from ftkit.cli import build_parser

    text = (ROOT / "README.md").read_text()
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = re.split(r"\s{2,}#", line)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    subcommands = build_parser()._subparsers._group_actions[0].choices
    for span in re.findall(r"`(ftkit [^`]+)`", re.sub(r"```.*?```", "", text, flags=re.S)):
        lines += [span.replace("COMMAND", name) for name in subcommands] if "COMMAND" in span else [span]
    return list(dict.fromkeys(lines))


def test_the_readme_shows_commands_from_every_part():
    commands = readme_commands()
    for expected in ("bash setup.sh", "ftkit train", "ftkit export RUN --format onnx", "ftkit predict RUN",
                     "ftkit estimate", "ftkit advise", "jupyter labextension list"):
        assert any(c.startswith(expected) for c in commands), expected


@pytest.mark.slow
def test_every_readme_command_runs(tmp_path, monkeypatch, capsys):
    """Each command exits 0 as written; RUN stands for a run the test trains first.

    The first training runs through the installed ``ftkit`` script, as a user types it; the other
    ``ftkit`` lines go through the same entry point (``ftkit.cli.main``) in this process, which saves
    loading the training stack once per line. Other programs (``jupyter ...``) run as themselves.
    """
    from ftkit.cli import main

    bin_dir = Path(sys.executable).parent
    monkeypatch.setenv("FTKIT_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.chdir(tmp_path)

    def run(argv: list[str]) -> tuple[int, str]:
        if argv[0] == "ftkit":
            capsys.readouterr()
            code = main(argv[1:])
            out = capsys.readouterr()
            return code, out.out + out.err
        done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=600)
        return done.returncode, done.stdout + done.stderr

    first = subprocess.run([str(bin_dir / "ftkit"), "train", "--preset", "demo", *TRAIN_CAP],
                           capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    run_id = json.loads(run(["ftkit", "runs", "--json"])[1])[0]["id"]
    for command in readme_commands():
        if command in CI_COMMANDS:
            continue
        argv = [run_id if word == "RUN" else word for word in shlex.split(command)]
        if argv[:2] == ["ftkit", "train"]:
            argv += TRAIN_CAP
        try:
            code, output = run(argv)
        except SystemExit as exc:  # argparse's --help
            code, output = exc.code or 0, capsys.readouterr().out
        assert code == 0, f"{command}\n{output[-4000:]}"
        if command.startswith("jupyter labextension list"):
            assert "ftkit-lab" in output and "enabled" in output
        if command.startswith("jupyter server extension list"):
            assert "ftkit.jupyter" in output


def test_every_picture_the_readme_shows_exists():
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (ROOT / "README.md").read_text())
    assert pictures and all((ROOT / p).is_file() for p in pictures), pictures
