"""Every test runs offline with its own runs folder; built-in models are cached once per session.

The suite runs on two pytest-xdist workers (``-n 2`` in pyproject.toml), each torch process with one
OpenMP thread: with two, torch's threads spin while they wait, and on two cores two workers with one
thread each did the same tests in 0.58x the time of one worker with two (controller and faults files:
131 s against 227 s, 230 against 303 CPU seconds). The browser tests are one unit of work (one
JupyterLab, one Chromium), handed out first; every other test file is a unit of its own (a module's
fixtures, such as its Slurm cluster or sshd, stay on one worker), files with slow tests first. A worker
takes the lowest CPU priority once it runs anything but browser tests, so the frontends' timings stay
close to those of a machine running them alone. Measured figures that tests report through ``figure``
are printed together at the end of the run, since a worker's own output is not shown.
"""
import json
import os
from pathlib import Path

import pytest

from ftkit.launch import tools_first

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported, here and in every child
tools_first(os.environ)  # the kernels the tests start find this interpreter's ninja, as ftkit's workers do


def _is_browser(item) -> bool:
    return "browser" in Path(item.path).relative_to(item.config.rootpath).parts


def pytest_collection_modifyitems(config, items):
    slow_files = {item.path for item in items if item.get_closest_marker("slow") is not None}
    # stable: tests keep their order within each file
    items.sort(key=lambda item: (not _is_browser(item), item.path not in slow_files))


def pytest_xdist_make_scheduler(config, log):
    """Units of work: all browser tests together, and each other test file."""
    from xdist.scheduler import LoadScopeScheduling

    class BrowserTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return "browser" if nodeid.startswith("tests/browser/") else nodeid.split("::")[0]

    return BrowserTogether(config, log)


_YIELDED = []


@pytest.fixture(autouse=True)
def _yield_to_the_browser_tests(request):
    """An xdist worker takes the lowest CPU priority (for its children too) at its first non-browser test."""
    if os.environ.get("PYTEST_XDIST_WORKER") and not _YIELDED and not _is_browser(request.node):
        os.nice(19)
        _YIELDED.append(True)


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
