"""Slurm for real (munge + slurmctld + one slurmd on 127.0.0.1, started here): the controller submits a
2-rank run with sbatch and follows it to the end; Stop ends one early; one that runs past its time limit
ends failed with Slurm's reason."""
import os
import time

import pytest

from ftkit import launch, slurm

from _slurm import start_slurm, stop_slurm
from test_zero import REPO, two_ranks

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("slurm")
    services = start_slurm(tmp)
    yield services
    stop_slurm(tmp)


@pytest.fixture
def env(cluster, monkeypatch):
    monkeypatch.setenv("SLURM_CONF", cluster["env"]["SLURM_CONF"])
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", os.environ.get("TORCH_EXTENSIONS_DIR")
                       or str(REPO / ".cache" / "torch_extensions"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return cluster


def slurm_run(**changes):
    return two_ranks(stage=2, method="lora", launcher="slurm").update(
        {"training.max_steps": 4, "distributed.master_port": launch.free_port(), **changes})


def test_the_controller_submits_a_two_rank_job_and_a_fresh_one_follows_it_to_the_end(env, capsys):
    from ftkit.controller import Controller

    t0 = time.time()
    started = Controller().start(slurm_run())
    while not (started.path / "slurm.json").exists() and not started.done:
        time.sleep(0.2)
    run = Controller().get(started.id)  # a kernel restart: a fresh controller reattaches to the job's follower
    assert run is not started and not run.done
    assert run.wait(400) == "finished", (run.summary or {}).get("reason")
    job_id = __import__("json").loads((run.path / "slurm.json").read_text())["job_id"]
    deadline = time.time() + 60  # the ranks have written their last event; the job ends as they exit
    while slurm.job(job_id).get("JobState") not in slurm.FINAL_STATES and time.time() < deadline:
        time.sleep(0.5)
    assert slurm.job(job_id)["JobState"] == "COMPLETED"
    assert "#SBATCH --nodes=1" in (run.path / "slurm.sbatch").read_text()
    steps = [e for e in run.events if e["type"] == "step"]
    assert [e["step"] for e in steps] == [1, 2, 3, 4]
    assert next(e for e in run.events if e["type"] == "started")["world_size"] == 2
    assert len(steps[-1]["rank_rss_mb"]) == 2
    with capsys.disabled():
        print(f"\n[slurm] job {job_id}: submit to first step {steps[0]['time'] - t0:.1f} s")


def test_a_job_past_its_time_limit_ends_failed_with_slurms_reason(env, capsys):
    from ftkit.controller import Controller

    run = Controller().start(slurm_run(**{"training.max_steps": 100000, "distributed.slurm.time": "1"}))
    assert run.wait(240) == "failed"
    reason = run.summary["reason"]
    assert reason.startswith("Slurm ended job ") and reason.endswith(
        " as TIMEOUT: it ran past its time limit (00:01:00, distributed.slurm.time) (Slurm's reason: TimeLimit)"), reason
    with capsys.disabled():
        print(f"\n[slurm time limit] {reason}")


def test_without_sbatch_the_launcher_is_refused_with_the_reason(monkeypatch):
    from ftkit.errors import ConfigError

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfigError, match="distributed.launcher: slurm needs Slurm's sbatch"):
        launch.check(slurm_run(), cuda=False)


def test_stop_checkpoints_and_the_job_ends(env):
    from ftkit.controller import Controller

    run = Controller().start(slurm_run(**{"training.max_steps": 100000}))
    deadline = time.time() + 240
    while not run.done and time.time() < deadline and len(run.steps()) < 2:
        time.sleep(0.2)
    run.stop()
    assert run.wait(120) == "stopped", (run.summary or {}).get("reason")
    assert run.checkpoints(), "Stop saves a checkpoint"
    job_id = __import__("json").loads((run.path / "slurm.json").read_text())["job_id"]
    assert slurm.job(job_id)["JobState"] in slurm.FINAL_STATES
