"""Every test runs offline with its own runs folder; built-in models are cached once per session.

Measured figures that tests report through ``figure`` are printed together at the end of the run.
"""
import json
import os
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture
def figure(request):
    """``figure(line)``: a figure this test measured, printed at the end of the run and kept in
    ``test-artifacts/figures.txt``."""
    return lambda line: request.node.user_properties.append(("figure", line))


def pytest_terminal_summary(terminalreporter):
    _seconds_per_file(terminalreporter)
    lines = [value for reports in terminalreporter.stats.values() for report in reports
             if getattr(report, "when", None) == "call"
             for key, value in getattr(report, "user_properties", ()) if key == "figure"]
    if not lines:
        return
    terminalreporter.section("measured figures")
    for line in lines:
        terminalreporter.write_line(line)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "figures.txt").write_text("\n".join(lines) + "\n")


def _seconds_per_file(terminalreporter) -> None:
    """Where the run's time went, file by file (setup, call and teardown together), printed and kept in
    ``test-artifacts/durations.json`` with every test's seconds: what to look at when CI grows slow."""
    per_test: dict = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "nodeid", None) and hasattr(report, "duration") and hasattr(report, "when"):
                per_test[report.nodeid] = per_test.get(report.nodeid, 0.0) + report.duration
    if not per_test:
        return
    per_file: dict = {}
    for nodeid, seconds in per_test.items():
        per_file[nodeid.split("::")[0]] = per_file.get(nodeid.split("::")[0], 0.0) + seconds
    terminalreporter.section("seconds per test file")
    for path, seconds in sorted(per_file.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{seconds:8.1f}  {path}")
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "durations.json").write_text(json.dumps(
        {"files": dict(sorted(per_file.items(), key=lambda item: -item[1])),
         "tests": dict(sorted(per_test.items(), key=lambda item: -item[1]))}, indent=1) + "\n")


@pytest.fixture(scope="session")
def _model_cache(tmp_path_factory):
    # a persistent cache (CI sets FTKIT_CACHE) saves rebuilding the tiny models
    return os.environ.get("FTKIT_CACHE") or str(tmp_path_factory.mktemp("ftkit-cache"))


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch, _model_cache):
    runs = tmp_path / "runs"
    monkeypatch.setenv("FTKIT_RUNS_DIR", str(runs))
    monkeypatch.setenv("FTKIT_CACHE", _model_cache)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
    return runs


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """One real Slurm (munge, slurmctld, slurmd on 127.0.0.1) for every test that needs it (tests/_slurm.py)."""
    from _slurm import start_slurm, stop_slurm

    tmp = tmp_path_factory.mktemp("slurm")
    services = start_slurm(tmp)
    yield services
    stop_slurm(tmp)
