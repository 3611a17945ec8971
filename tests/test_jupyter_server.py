"""ftkit's Jupyter server extension, served by a real ``jupyter server`` with a token.

Run folders are written the way the store and the worker write them (config,
events, summary); no training runs here. The server is started once for the
module on a free port with its own config and runtime folders.
"""
from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from ftkit.config import RunConfig
from ftkit.events import JsonlWriter, make_event
from ftkit.jupyter.runs import RunRows

FINISHED = "20250101-120000-lora-classification-aaaa"
RUNNING = "20250101-130000-dora-classification-bbbb"
TWO_NODES = "20250101-110000-lora-classification-cccc"


def write_run(root: Path, run_id: str, method: str, events: list[dict], summary: dict | None = None,
              **changes) -> Path:
    path = root / run_id
    (path / "logs").mkdir(parents=True)
    config = RunConfig.preset("demo").set("method.name", method).update(changes)
    config.to_yaml(path / "config.yaml")
    config.to_json(path / "config.json")
    writer = JsonlWriter(path / "events.jsonl")
    for event in events:
        writer(event)
    writer.close()
    if summary is not None:
        (path / "summary.json").write_text(json.dumps(summary))
    return path


def finished_run(root: Path) -> Path:
    return write_run(root, FINISHED, "lora", [
        make_event("status", status="starting"),
        make_event("started", max_steps=4, start_step=0),
        *[make_event("step", step=s, loss=1.0 / s) for s in range(1, 5)],
        make_event("eval", step=4, metrics={"accuracy": 0.75}),
        make_event("ended", status="finished", reason=None),
    ], {"run_id": FINISHED, "status": "finished", "reason": None, "method": "lora", "task": "classification",
        "steps": 4, "max_steps": 4, "best": {"metric": "accuracy", "value": 0.75, "step": 4}})


def running_run(root: Path) -> Path:
    path = write_run(root, RUNNING, "dora", [
        make_event("status", status="starting"),
        make_event("started", max_steps=100, start_step=0),
        make_event("step", step=3, loss=0.9),
    ])
    import psutil

    me = psutil.Process()  # trains "in this kernel": alive as long as the tests run
    (path / "worker.json").write_text(json.dumps({"mode": "thread", "pid": me.pid, "create_time": me.create_time()}))
    return path


def two_node_run(root: Path) -> Path:
    """A torchrun run over two machines, one rank each, as its worker writes it (its agent alive here)."""
    path = write_run(root, TWO_NODES, "lora", [
        make_event("status", status="starting"),
        make_event("started", max_steps=50, start_step=0, world_size=2),
        make_event("step", step=7, loss=0.8, rank_rss_mb=[610.0, 640.5], rank_nodes=[0, 1]),
    ], **{"distributed.launcher": "torchrun", "distributed.num_nodes": 2, "distributed.num_processes": 1,
          "distributed.master_port": 29511})
    import psutil

    me = psutil.Process()
    (path / "worker.json").write_text(json.dumps({"mode": "process", "pid": me.pid, "create_time": me.create_time(),
                                                  "launcher": "torchrun"}))
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, port: int, token: str, runs: Path):
        self.port, self.token, self.runs = port, token, runs

    def call(self, method: str, path: str, token: bool = True) -> tuple[int, dict]:
        """A raw request: the path goes out exactly as written (no client-side normalising of '..')."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Authorization": f"token {self.token}"} if token else {}
        conn.request(method, path, body=b"" if method == "POST" else None, headers=headers)
        response = conn.getresponse()
        text = response.read().decode()
        conn.close()
        try:
            return response.status, json.loads(text)
        except json.JSONDecodeError:
            return response.status, {"text": text}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("server")
    root, runs = base / "root", base / "elsewhere" / "runs"
    for d in (root, runs, base / "config", base / "runtime"):
        d.mkdir(parents=True)
    two_node_run(runs)
    finished_run(runs)
    running_run(runs)
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(base / "config"), "JUPYTER_RUNTIME_DIR": str(base / "runtime")}
    env.pop("FTKIT_RUNS_DIR", None)  # the trait below decides
    cmd = [sys.executable, "-m", "jupyter_server", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}", f"--FtkitExtension.runs_dir={runs}"]
    log = open(base / "server.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("jupyter server did not start:\n" + (base / "server.log").read_text()[-3000:])
                time.sleep(0.3)
        yield Server(port, token, runs)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_extension_is_enabled_by_installing_ftkit():
    """Installing ftkit turns on the server extension and the prebuilt lab extension, with no manual step."""
    out = subprocess.run([sys.executable, "-m", "jupyter_server", "extension", "list"],
                         capture_output=True, text=True, timeout=120)
    text = out.stdout + out.stderr
    assert "ftkit.jupyter" in text and "enabled" in text.split("ftkit.jupyter", 1)[1].splitlines()[0], text
    out = subprocess.run([sys.executable, "-m", "jupyterlab.labextensions", "list"],
                         capture_output=True, text=True, timeout=120)
    line = next((line for line in (out.stdout + out.stderr).splitlines() if "ftkit-lab" in line), "")
    assert "enabled" in line and "OK" in line, out.stdout + out.stderr


def test_lists_runs_newest_first_with_panel_fields(server):
    status, data = server.call("GET", "/ftkit/runs")
    assert status == 200, data
    assert data["runs_dir"] == str(server.runs)
    rows = {row["id"]: row for row in data["runs"]}
    assert [row["id"] for row in data["runs"]] == [RUNNING, FINISHED, TWO_NODES]  # by start time, newest first
    done = rows[FINISHED]
    assert (done["status"], done["method"], done["task"], done["steps"]) == ("finished", "lora", "classification", 4)
    assert done["best"] == {"metric": "accuracy", "value": 0.75, "step": 4}
    assert isinstance(done["started"], float) and abs(done["started"] - time.time()) < 600
    live = rows[RUNNING]
    assert (live["status"], live["method"], live["steps"], live["max_steps"], live["best"]) == \
        ("running", "dora", 3, 100, None)


def test_a_two_node_run_shows_memory_per_rank_and_per_node_and_stops(server):
    status, data = server.call("GET", "/ftkit/runs")
    row = next(row for row in data["runs"] if row["id"] == TWO_NODES)
    assert (row["status"], row["steps"], row["max_steps"], row["nodes"], row["launcher"]) == \
        ("running", 7, 50, 2, "torchrun"), row
    assert row["rank_rss_mb"] == [610.0, 640.5] and row["node_rss_mb"] == {"0": 610.0, "1": 640.5}, row
    status, data = server.call("POST", f"/ftkit/runs/{TWO_NODES}/stop")
    assert (status, data) == (202, {"id": TWO_NODES, "status": "stopping"})
    assert (server.runs / TWO_NODES / "control" / "stop").exists()


def test_a_finished_runs_row_keeps_its_memory_per_rank(tmp_path):
    path = finished_run(tmp_path)
    summary = json.loads((path / "summary.json").read_text())
    (path / "summary.json").write_text(json.dumps({**summary, "rank_peak_rss_mb": [700.0, 710.0]}))
    row = RunRows(tmp_path).row(path)
    assert (row["rank_rss_mb"], row["node_rss_mb"], row["nodes"]) == ([700.0, 710.0], None, 1)


def test_one_run_has_config_and_summary(server):
    status, data = server.call("GET", f"/ftkit/runs/{FINISHED}")
    assert status == 200, data
    assert data["config"]["method"]["name"] == "lora"
    assert data["summary"]["best"]["value"] == 0.75
    assert data["path"] == str(server.runs / FINISHED)


def test_stop_writes_the_controllers_marker(server):
    marker = server.runs / RUNNING / "control" / "stop"
    assert not marker.exists()
    status, data = server.call("POST", f"/ftkit/runs/{RUNNING}/stop")
    assert (status, data) == (202, {"id": RUNNING, "status": "stopping"})
    assert marker.exists()


def test_stop_refuses_a_finished_run(server):
    status, data = server.call("POST", f"/ftkit/runs/{FINISHED}/stop")
    assert status == 409 and "finished" in data["message"] and "nothing to stop" in data["message"]
    assert not (server.runs / FINISHED / "control").exists()


@pytest.mark.parametrize("path", [
    "/ftkit/runs/..", "/ftkit/runs/%2e%2e", "/ftkit/runs/a/b", "/ftkit/runs/a%2Fb", "/ftkit/runs/..%2F..%2Fetc",
    "/ftkit/runs//etc/passwd", "/ftkit/runs/.hidden",
])
def test_bad_ids_are_refused_with_a_json_message(server, path):
    status, data = server.call("GET", path)
    assert status == 400, (path, status, data)
    assert "invalid run id" in data["message"] and "no slashes" in data["message"]


def test_bad_id_refused_for_stop_too(server):
    status, data = server.call("POST", "/ftkit/runs/%2e%2e/stop")
    assert status == 400 and "invalid run id" in data["message"]


def test_unknown_run_is_404(server):
    status, data = server.call("GET", "/ftkit/runs/20990101-000000-nope")
    assert status == 404 and "no run '20990101-000000-nope'" in data["message"]


def test_a_link_out_of_the_runs_folder_is_refused(server, tmp_path):
    outside = write_run(tmp_path, "outside-run", "lora", [])
    link = server.runs / "linked-run"
    link.symlink_to(outside, target_is_directory=True)
    try:
        status, data = server.call("GET", "/ftkit/runs/linked-run")
        assert status == 400 and "outside the runs folder" in data["message"]
        status, data = server.call("GET", "/ftkit/runs")
        assert "linked-run" not in [row["id"] for row in data["runs"]]
    finally:
        link.unlink()


def test_template_is_the_quickstart_without_outputs(server):
    status, data = server.call("GET", "/ftkit/template")
    assert status == 200, data
    nb = data["content"]
    assert nb["nbformat"] == 4 and nb["metadata"]["kernelspec"]["name"] == "python3"
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert code and all(c["outputs"] == [] and c["execution_count"] is None for c in code)
    assert any("ftkit" in "".join(c["source"]) for c in code)


@pytest.mark.parametrize("method,path", [("GET", "/ftkit/runs"), ("GET", f"/ftkit/runs/{FINISHED}"),
                                         ("POST", f"/ftkit/runs/{RUNNING}/stop"), ("GET", "/ftkit/template")])
def test_requests_without_the_token_are_refused(server, method, path):
    status, _ = server.call(method, path, token=False)
    assert status in (401, 403)


def test_rows_follow_a_run_as_its_events_grow(tmp_path):
    """Rows are read incrementally: each poll sees new events, and a final summary wins."""
    path = write_run(tmp_path, RUNNING, "lora", [make_event("status", status="starting")])
    rows = RunRows(tmp_path)
    assert rows.rows()[0]["status"] == "starting"
    writer = JsonlWriter(path / "events.jsonl")
    writer(make_event("started", max_steps=10, start_step=0))
    writer(make_event("step", step=2, loss=0.5))
    assert (rows.rows()[0]["status"], rows.rows()[0]["steps"]) == ("running", 2)
    writer(make_event("ended", status="stopped", reason="stop requested"))
    writer.close()
    assert rows.rows()[0]["status"] == "stopped"
    (path / "summary.json").write_text(json.dumps({"status": "stopped", "steps": 2, "max_steps": 10,
                                                    "reason": "stop requested", "best": None}))
    row = rows.rows()[0]
    assert (row["status"], row["steps"], row["reason"]) == ("stopped", 2, "stop requested")


def test_runs_folder_setting(tmp_path, monkeypatch):
    from ftkit.jupyter import FtkitExtension

    monkeypatch.delenv("FTKIT_RUNS_DIR", raising=False)
    assert FtkitExtension().resolve_runs_dir(str(tmp_path)) == tmp_path / "runs"
    monkeypatch.setenv("FTKIT_RUNS_DIR", "/srv/runs")
    assert FtkitExtension().resolve_runs_dir(str(tmp_path)) == Path("/srv/runs")
    assert FtkitExtension(runs_dir="mine").resolve_runs_dir(str(tmp_path)) == tmp_path / "mine"


def test_server_extension_imports_no_torch():
    code = ("import sys, ftkit.jupyter, ftkit.jupyter.handlers; "
            "print([m for m in ('torch', 'transformers', 'peft') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "[]", out.stderr


def test_rows_close_a_run_whose_process_died_and_stop_says_so(tmp_path):
    from _fakes import killed_run

    from ftkit.jupyter.runs import request_stop
    from ftkit.liveness import AWAY_REASON
    from ftkit.store import RunStore

    record = killed_run(RunStore(tmp_path))
    assert record.status == "running"
    row = RunRows(tmp_path).row(record.path)
    assert (row["status"], row["reason"]) == ("failed", AWAY_REASON)
    assert row["best"] == {"metric": "accuracy", "value": 1.0, "step": 40}  # a killed run that evaluated
    assert record.events()[-1]["type"] == "ended"
    with pytest.raises(ValueError) as refused:
        request_stop(record.path, row)
    assert "has already ended: failed" in str(refused.value) and AWAY_REASON in str(refused.value)


def test_stop_on_a_dead_run_answers_with_what_happened(server):
    from _fakes import killed_run

    from ftkit.liveness import AWAY_REASON
    from ftkit.store import RunStore

    record = killed_run(RunStore(server.runs))
    status, data = server.call("POST", f"/ftkit/runs/{record.id}/stop")
    assert status == 409 and "failed" in data["message"] and AWAY_REASON in data["message"]
    status, data = server.call("GET", f"/ftkit/runs/{record.id}")
    assert status == 200 and data["status"] == "failed" and data["reason"] == AWAY_REASON
