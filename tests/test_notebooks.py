"""The notebooks in notebooks/: committed without outputs, and each one runs top to bottom headless.

Each notebook is executed with nbclient in a fresh kernel of this interpreter
(the ``python3`` kernel resolves to ``sys.executable``), in a temporary
folder with its own runs folder. Times are printed and recorded in
``test-artifacts/notebook-times.json``: wall seconds, and CPU seconds of the
kernel and the workers it started (on a busy machine the second says more).
The executed copies are kept in ``test-artifacts/notebooks/`` to read what a
run printed.
"""
import json
import os
import resource
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = REPO / "test-artifacts"
#: notebook -> seconds any one cell may take; the whole notebook gets that plus a margin. They stop a
#: hang, not a slow machine: measured on 2 busy cores, each notebook took 40-230 s, under half of this.
BUDGET = {
    "01_quickstart.ipynb": 300,
    "02_compare_methods.ipynb": 480,
    "03_workshop.ipynb": 480,
    "04_distributed_zero.ipynb": 600,
    "05_tasks_tour.ipynb": 480,
}
MARGIN = 120


def notebooks() -> list[Path]:
    return sorted(NOTEBOOKS.glob("*.ipynb"))


def test_every_notebook_has_a_budget_and_every_budget_a_notebook():
    assert sorted(p.name for p in notebooks()) == sorted(BUDGET)


@pytest.mark.parametrize("path", notebooks(), ids=lambda p: p.stem)
def test_committed_notebook_is_stripped(path):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    assert "widgets" not in nb.metadata, f"{path.name}: saved widget state; clear it before committing"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and nb.cells[0].cell_type == "markdown"
    for i, cell in enumerate(code):
        assert cell.outputs == [], f"{path.name}: code cell {i} has outputs; strip them before committing"
        assert cell.execution_count is None, f"{path.name}: code cell {i} has an execution count"
        assert "widgets" not in cell.metadata and "execution" not in cell.metadata


def _cpu_of_children() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def _record(name: str, seconds: float, cpu: float) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    times_file = ARTIFACTS / "notebook-times.json"
    try:
        times = json.loads(times_file.read_text())
    except (OSError, ValueError):
        times = {}
    times[name] = {"wall_s": round(seconds, 1), "cpu_s": round(cpu, 1)}
    times_file.write_text(json.dumps(times, indent=2, sort_keys=True) + "\n")


def _errors(nb) -> list[str]:
    return [f"cell {i}: {o.get('ename')}: {o.get('evalue')}" for i, cell in enumerate(nb.cells)
            if cell.cell_type == "code" for o in cell.get("outputs", []) if o.get("output_type") == "error"]


@pytest.mark.slow
@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.timeout(BUDGET.get(p.name, 600) + MARGIN))
                                  for p in notebooks()], ids=lambda p: p.stem)
def test_notebook_runs_headless(path, tmp_path, monkeypatch, figure):
    import nbformat
    from nbclient import NotebookClient

    # DeepSpeed's one JIT build is cached where tests/test_zero.py caches it
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", os.environ.get("TORCH_EXTENSIONS_DIR")
                       or str(REPO / ".cache" / "torch_extensions"))
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    # one compute thread per process: beside the kernel's own threads (event dispatch, widget feeds) and
    # other processes, two spinning OpenMP threads on 2 cores made these runs 4-8x slower (measured)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, kernel_name="python3", timeout=BUDGET.get(path.name, 600),
                            resources={"metadata": {"path": str(tmp_path)}})
    start, cpu = time.monotonic(), _cpu_of_children()
    try:
        client.execute()  # shuts the kernel down at the end, so its CPU time is counted below
    finally:
        seconds, cpu = time.monotonic() - start, _cpu_of_children() - cpu
        _record(path.name, seconds, cpu)
        (ARTIFACTS / "notebooks").mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, ARTIFACTS / "notebooks" / path.name)
        figure(f"[{path.name}] executed in {seconds:.1f} s ({cpu:.1f} s of CPU)")
    assert not _errors(nb), _errors(nb)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                      if o.get("output_type") == "stream" and o.get("name") == "stdout")
    assert printed.strip(), f"{path.name} printed nothing: a headless run should show its results as text"
