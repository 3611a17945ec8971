"""Slurm for real (munge + slurmctld + one slurmd on 127.0.0.1, one cluster per session, started by the
``slurm_cluster`` fixture): a run submitted from a kernel that then goes away, its follower killed too, is
found again by a fresh controller through the job id in the run folder, shows live, stops with a checkpoint;
``resume_from`` submits a new job that continues from it and finishes; a job past its time limit (paused, so
it waits alongside the first test) and a job whose node goes down end failed with Slurm's reason."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from ftkit import launch, slurm
from ftkit.liveness import owner_info, process_alive

from test_zero import REPO, two_ranks

pytestmark = pytest.mark.slow

#: a kernel that starts a run and exits once Slurm has the job (its daemon threads die with it)
KERNEL = ("import sys, time\n"
          "from ftkit.config import RunConfig\n"
          "from ftkit.controller import Controller\n"
          "run = Controller().start(RunConfig.from_json(sys.argv[1]))\n"
          "while not (run.path / 'slurm.json').exists() and not run.done:\n"
          "    time.sleep(0.2)\n"
          "print(run.id)\n")


@pytest.fixture
def env(slurm_cluster, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", slurm_cluster["env"]["SLURM_CONF"])
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", os.environ.get("TORCH_EXTENSIONS_DIR")
                       or str(REPO / ".cache" / "torch_extensions"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return slurm_cluster


@pytest.fixture(scope="module")
def time_limited(slurm_cluster, _model_cache, tmp_path_factory):
    """Started during the first test and paused after its first step: it sleeps in its allocation (the test
    node has a core for it) while the first test goes on, until Slurm kills it at its time limit."""
    from ftkit.controller import Controller

    with pytest.MonkeyPatch.context() as mp:
        for key, value in {"SLURM_CONF": slurm_cluster["env"]["SLURM_CONF"], "FTKIT_CACHE": _model_cache,
                           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                           "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1",
                           "TORCH_EXTENSIONS_DIR": os.environ.get("TORCH_EXTENSIONS_DIR")
                           or str(REPO / ".cache" / "torch_extensions")}.items():
            mp.setenv(key, value)
        controller = Controller(runs_dir=str(tmp_path_factory.mktemp("time-limit")))
        run = controller.start(slurm_run(**{"training.max_steps": 100000, "distributed.slurm.time": "1"}))
        run.pause()
    return run


def slurm_run(**changes):
    return two_ranks(stage=2, method="lora", launcher="slurm").update(
        {"training.max_steps": 4, "distributed.master_port": launch.free_port(), **changes})


def job_id(run) -> str:
    return json.loads((run.path / "slurm.json").read_text())["job_id"]


def wait_until(check, timeout, what):
    deadline = time.time() + timeout
    while not check():
        assert time.time() < deadline, f"waited {timeout} s for {what}"
        time.sleep(0.3)


def steps_on_disk(path) -> list:
    from ftkit.events import read_events

    return [e for e in read_events(path / "events.jsonl")[0] if e["type"] == "step"]


def test_a_fresh_controller_reattaches_when_the_follower_is_gone_stop_checkpoints_and_resume_resubmits(
        env, request, tmp_path, isolated_env, figure):
    from ftkit.controller import Controller
    from ftkit.jupyter.runs import RunRows

    config_file = tmp_path / "config.json"
    slurm_run(**{"training.max_steps": 100000}).to_json(config_file)
    out = subprocess.run([sys.executable, "-c", KERNEL, str(config_file)], capture_output=True, text=True,
                         timeout=120, env=os.environ)
    assert out.returncode == 0, out.stderr[-2000:]
    path = isolated_env / out.stdout.strip().splitlines()[-1]
    wait_until(lambda: len(steps_on_disk(path)) >= 1, 900, "a first step")  # a cold DeepSpeed build: minutes
    # DeepSpeed's extensions are built now: the time-limited job can start alongside without racing the
    # build (a job killed while it holds the build's lock would leave every later run waiting on it)
    request.getfixturevalue("time_limited")
    follower = owner_info(path)["pid"]
    os.kill(follower, signal.SIGKILL)  # the follower is gone too: only Slurm knows the job now
    wait_until(lambda: not process_alive(follower), 10, "the follower to die")

    row = RunRows(isolated_env).row(path)  # the runs panel: still running, not closed as dead
    assert row["status"] == "running" and row["reason"] is None, row
    assert len(row["rank_rss_mb"]) == 2 and all(mb > 50 for mb in row["rank_rss_mb"]), row

    run = Controller().get(path.name)
    assert not run.done and run.status == "running"
    assert owner_info(path)["pid"] not in (None, follower) and process_alive(owner_info(path)["pid"])
    seen = len(run.steps())
    wait_until(lambda: len(run.steps()) >= seen + 1, 120, "a step seen live by the new follower")
    run.stop()
    assert run.wait(120) == "stopped", (run.summary or {}).get("reason")
    (checkpoint,) = run.checkpoints()[-1:]
    stopped_at = int(checkpoint.name.split("-")[-1])
    first_job = job_id(run)
    assert slurm.job(first_job)["JobState"] == "COMPLETED"

    t0 = time.time()
    started = Controller().start(slurm_run(**{"training.max_steps": stopped_at + 2, "resume_from": str(checkpoint)}))
    wait_until(lambda: (started.path / "slurm.json").exists() or started.done, 60, "the resubmitted job")
    resumed = Controller().get(started.id)  # a kernel restart while the follower lives: it is tailed again
    assert resumed is not started and not resumed.done
    assert resumed.wait(300) == "finished", (resumed.summary or {}).get("reason")
    assert job_id(resumed) != first_job
    wait_until(lambda: slurm.job(job_id(resumed)).get("JobState") in slurm.FINAL_STATES, 60, "the job to end")
    assert slurm.job(job_id(resumed))["JobState"] == "COMPLETED"
    steps = [e for e in resumed.events if e["type"] == "step"]
    assert [e["step"] for e in steps] == [stopped_at + 1, stopped_at + 2]
    assert next(e for e in resumed.events if e["type"] == "started")["world_size"] == 2
    assert "#SBATCH --nodes=1" in (resumed.path / "slurm.sbatch").read_text()
    figure(f"[slurm] stopped at step {stopped_at} (job {first_job}); resumed as job {job_id(resumed)}: "
           f"submit to first step {steps[0]['time'] - t0:.1f} s")


def test_a_job_past_its_time_limit_ends_failed_with_slurms_reason(env, time_limited, figure):
    assert time_limited.wait(240) == "failed"
    reason = time_limited.summary["reason"]
    assert reason.startswith("Slurm ended job ") and reason.endswith(
        " as TIMEOUT: it ran past its time limit (00:01:00, distributed.slurm.time) (Slurm's reason: TimeLimit)"), reason
    figure(f"[slurm time limit] {reason}")


def test_a_job_whose_node_goes_down_ends_failed_with_the_nodes_reason(env, figure):
    from ftkit.controller import Controller

    run = Controller().start(slurm_run(**{"training.max_steps": 100000}))
    wait_until(lambda: len(run.steps()) >= 1 or run.done, 240, "a first step")
    scontrol = ["scontrol", "update", f"nodename={env['host']}"]
    subprocess.run(scontrol + ["state=down", "reason=ftkit-test-power-cut"], check=True, capture_output=True)
    try:
        assert run.wait(120) == "failed"
    finally:
        subprocess.run(scontrol + ["state=resume"], capture_output=True)  # an admin's DOWN stays until resumed
        wait_until(lambda: subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True,
                                          text=True).stdout.strip() == "idle", 60, "the node to come back")
    reason = run.summary["reason"]
    assert reason.startswith("Slurm ended job ") and " as NODE_FAIL: one of its nodes failed" in reason, reason
    assert "ftkit-test-power-cut" in reason, reason
    figure(f"[slurm node down] {reason}")


def test_without_sbatch_the_launcher_is_refused_with_the_reason(monkeypatch):
    from ftkit.errors import ConfigError

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfigError, match="distributed.launcher: slurm needs Slurm's sbatch"):
        launch.check(slurm_run(), cuda=False)
