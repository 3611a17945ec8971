"""The Slurm batch script on a real Slurm (munge + slurmctld + one slurmd on 127.0.0.1, started here):
a 2-rank run trains to the end, and one that runs past its time limit ends with Slurm's reason."""
import json
import time

import pytest

from ftkit import slurm
from ftkit.events import read_events
from ftkit.store import RunStore

from _slurm import start_slurm, stop_slurm
from test_zero import two_ranks

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("slurm")
    services = start_slurm(tmp)
    yield services
    stop_slurm(tmp)


@pytest.fixture
def ds_env(monkeypatch):
    from test_zero import REPO
    import os

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", os.environ.get("TORCH_EXTENSIONS_DIR")
                       or str(REPO / ".cache" / "torch_extensions"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def submit(cluster, tmp_path, **changes):
    from ftkit import launch

    config = two_ranks(stage=2, method="lora", launcher="slurm").update(
        {"training.max_steps": 4, "distributed.master_port": launch.free_port(), **changes})
    record = RunStore(tmp_path / "runs").create(config)
    (record.path / "logs").mkdir(exist_ok=True)
    script = slurm.write_script(config, record.path)
    t0 = time.time()
    job_id = slurm.submit(script, env=cluster["env"])
    return record, job_id, t0


def follow(cluster, job_id, timeout):
    deadline = time.time() + timeout
    fields = {}
    while time.time() < deadline:
        fields = slurm.job(job_id, env=cluster["env"])
        if fields.get("JobState") in slurm.FINAL_STATES:
            return fields
        time.sleep(0.5)
    slurm.cancel(job_id, env=cluster["env"])
    raise AssertionError(f"job {job_id} still {fields.get('JobState')} after {timeout} s")


def test_a_two_rank_job_trains_and_its_events_reach_the_run_folder(cluster, tmp_path, ds_env, capsys):
    record, job_id, t0 = submit(cluster, tmp_path)
    fields = follow(cluster, job_id, 400)
    log = (record.path / "logs" / "worker.log").read_text(errors="replace")
    assert fields["JobState"] == "COMPLETED", log[-3000:]
    assert slurm.end_reason(fields) is None
    events, _ = read_events(record.path / "events.jsonl")
    steps = [e for e in events if e["type"] == "step"]
    assert [e["step"] for e in steps] == [1, 2, 3, 4]
    assert next(e for e in events if e["type"] == "started")["world_size"] == 2
    assert events[-1]["type"] == "ended" and events[-1]["status"] == "finished"
    first_step_s = steps[0]["time"] - t0
    with capsys.disabled():
        print(f"\n[slurm] job {job_id}: submit to first step {first_step_s:.1f} s; "
              f"ranks {json.dumps(steps[-1]['rank_rss_mb'])} MB")


def test_a_job_past_its_time_limit_ends_with_slurms_reason(cluster, tmp_path, ds_env, capsys):
    record, job_id, _ = submit(cluster, tmp_path, **{"training.max_steps": 100000, "distributed.slurm.time": "1"})
    fields = follow(cluster, job_id, 240)
    assert fields["JobState"] == "TIMEOUT"
    reason = slurm.end_reason(fields)
    assert reason.startswith(f"Slurm ended job {job_id} as TIMEOUT: it ran past its time limit (00:01:00"), reason
    with capsys.disabled():
        print(f"\n[slurm time limit] {reason}")
