"""The controller: in-kernel and subprocess runs, live events, buttons, resume, crashes, rediscovery."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ftkit.config import RunConfig
from ftkit.controller import AWAY_REASON, QUEUED_REASON, Controller
from ftkit.errors import ConfigError
from ftkit.events import read_events

REPO = Path(__file__).resolve().parents[1]
#: resumed losses must match an uninterrupted run's to this (absolute, on losses of ~0.1-1.5)
RESUME_TOLERANCE = 1e-4


def tiny(**changes) -> RunConfig:
    base = {
        "model.name_or_path": "builtin:tiny-llama",
        "task.name": "classification",
        "method.name": "full",
        "data.max_train_samples": 16,
        "data.max_eval_samples": 8,
        "training.max_steps": 12,
        "training.batch_size": 8,
        "training.max_seq_length": 32,
        "training.learning_rate": 3e-4,
        "training.logging_steps": 1,
        "training.eval_steps": 0,
    }
    return RunConfig().update({**base, **changes})


def wait_for(predicate, timeout=120.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def losses(run) -> dict:
    return {step: loss for step, loss in run.steps()}


def test_importing_the_controller_loads_no_training_stack():
    code = ("import sys, ftkit.controller, ftkit.launch, ftkit.zero, ftkit.worker; "
            "print([m for m in ('torch', 'transformers', 'peft', 'deepspeed') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_an_invalid_config_writes_nothing(isolated_env, tmp_path):
    controller = Controller()
    with pytest.raises(ConfigError, match="data.source"):
        controller.start(tiny(**{"data.source": str(tmp_path / "missing.jsonl")}))
    with pytest.raises(ConfigError, match="resume_from"):
        controller.queue([tiny(), tiny(resume_from="no-such-run")])
    assert not isolated_env.exists() or not any(isolated_env.iterdir())
    assert controller.runs == []


def test_thread_run_trains_while_the_kernel_keeps_working():
    controller = Controller()
    seen, statuses, every = [], [], []
    run = controller.start(tiny())
    run.subscribe(lambda e: seen.append(e))
    run.subscribe(lambda e: statuses.append(run.status))
    run.subscribe(lambda e: 1 / 0)  # a broken subscriber changes nothing
    controller.subscribe(lambda r, e: every.append((r.id, e["type"])))
    work = 0
    while not run.done:  # the test's own thread keeps working meanwhile
        work += sum(i * i for i in range(200))
        time.sleep(0.01)
    assert run.wait(5) == "finished", run.summary["reason"]
    assert work > 0
    events = run.events
    assert [e["type"] for e in events][-1] == "ended"
    assert seen == events[len(events) - len(seen):]  # in order, none lost after subscribing
    assert every[-1] == (run.id, "ended") and len(every) == len(seen)
    steps = [e["step"] for e in events if e["type"] == "step"]
    assert steps == list(range(1, 13))
    times = [e["time"] for e in events]
    assert times == sorted(times)
    assert "running" in statuses and statuses[-1] == "finished"
    assert steps and events[[e["type"] for e in events].index("step")]["rank_rss_mb"][0] > 0
    assert json.loads((run.path / "summary.json").read_text())["status"] == "finished"
    assert json.loads((run.path / "worker.json").read_text())["mode"] == "thread"


def test_pause_holds_between_steps_and_resume_continues():
    controller = Controller()
    run = controller.start(tiny(**{"training.max_steps": 40}))
    wait_for(lambda: len(run.steps()) >= 2, what="two steps")
    run.pause()
    wait_for(lambda: run.status == "paused", what="paused")
    held = len(run.steps())
    time.sleep(1.0)
    assert len(run.steps()) == held and run.status == "paused"
    run.resume()
    run.save_checkpoint()
    assert run.wait(120) == "finished"
    assert len(run.steps()) == 40
    assert any(e["type"] == "checkpoint" for e in run.events)  # save-now honoured


def test_queue_runs_one_after_another():
    controller = Controller()
    first, second = controller.queue([tiny(**{"training.max_steps": 4}), tiny(**{"training.max_steps": 4})])
    assert second.status == "queued"
    assert second.wait(180) == "finished" and first.status == "finished"
    assert first.events[-1]["time"] <= second.events[0]["time"]


def test_stop_then_resume_matches_an_uninterrupted_run():
    controller = Controller()
    whole = controller.start(tiny())
    assert whole.wait(180) == "finished"

    cut = controller.start(tiny())
    cut.subscribe(lambda e: cut.stop() if e["type"] == "step" and e["step"] == 5 else None)
    assert cut.wait(180) == "stopped"
    stopped_at = max(losses(cut))
    assert 5 <= stopped_at < 12
    assert [p.name for p in cut.checkpoints()] == [f"checkpoint-{stopped_at}"]

    resumed = controller.start(tiny(resume_from=cut.id))
    assert resumed.wait(180) == "finished", resumed.summary["reason"]
    started = next(e for e in resumed.events if e["type"] == "started")
    assert started["start_step"] == stopped_at
    after = losses(resumed)
    assert sorted(after) == list(range(stopped_at + 1, 13))  # step numbers continue
    reference = losses(whole)
    for step, loss in after.items():
        assert abs(loss - reference[step]) <= RESUME_TOLERANCE, (step, loss, reference[step])
    for step in range(1, stopped_at + 1):
        assert abs(losses(cut)[step] - reference[step]) <= RESUME_TOLERANCE
    worst = max(abs(loss - reference[step]) for step, loss in after.items())
    print(f"\n[thread resume] stopped at {stopped_at}, max |resumed - uninterrupted| loss = {worst:.2e}")


def test_subprocess_run_relays_events_and_records_the_worker(tmp_path, monkeypatch, figure):
    monkeypatch.delenv("FTKIT_RUNS_DIR")
    monkeypatch.chdir(tmp_path)  # the default runs folder, ./runs: the worker starts in the run folder
    controller = Controller()
    lag = []
    run = controller.start(tiny(**{"distributed.launcher": "python"}))
    run.subscribe(lambda e: lag.append(time.time() - e["time"]))
    assert run.wait(240) == "finished", run.log_tail(20)
    assert run.path.parent == tmp_path / "runs"
    info = json.loads((run.path / "worker.json").read_text())
    assert info["pid"] > 0 and info["argv"][1:] == ["-m", "ftkit.worker", str(run.path)]
    assert (run.path / "logs" / "worker.log").exists()
    assert [s for s, _ in run.steps()] == list(range(1, 13))
    median = sorted(lag)[len(lag) // 2]
    assert lag and median < 5  # live: an event reaches the kernel while the run goes on, not at its end
    figure(f"[process run] median seconds from an event written to its subscriber: {median:.3f}")


def test_a_failing_worker_ends_failed_with_the_reason(tmp_path):
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({"text": f"row {i}", "label": "a" if i % 2 else "b"}) + "\n" for i in range(20)))
    refused = tiny(**{"distributed.launcher": "python", "data.source": str(data),
                      "task.classification.labels": ["a"]})
    with pytest.raises(ConfigError, match="task.classification.labels: rows.jsonl line 1: label 'b'"):
        Controller().start(refused)  # a label the data has and the config lacks: refused before any folder
    model = tmp_path / "weightless"  # passes every check up front, fails only when the worker loads it
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "bert"}))
    config = tiny(**{"distributed.launcher": "python", "data.source": str(data), "model.name_or_path": str(model)})
    run = Controller().start(config)
    assert run.wait(240) == "failed"
    assert "model.name_or_path" in run.summary["reason"] and run.events[-1]["type"] == "ended"


def test_sigkill_mid_run_fails_with_the_reason_and_keeps_the_events():
    controller = Controller()
    run = controller.start(tiny(**{"distributed.launcher": "python", "training.max_steps": 400}))
    wait_for(lambda: len(run.steps()) >= 3, timeout=240, what="three steps")
    os.kill(run.pid, signal.SIGKILL)
    assert run.wait(60) == "failed"
    final = run.events[-1]
    assert final["type"] == "ended" and final["status"] == "failed" and final["exit_code"] == -9
    assert "SIGKILL" in final["reason"] and "out-of-memory" in final["reason"]
    assert isinstance(final["log_tail"], list)
    on_disk = read_events(run.path / "events.jsonl")[0]
    assert on_disk == run.events  # every line the worker wrote is intact, plus the closing event
    steps = [s for s, _ in run.steps()]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 3
    assert json.loads((run.path / "summary.json").read_text())["status"] == "failed"


def test_a_fresh_controller_finds_every_run_and_reattaches_a_live_worker():
    first = Controller()
    done = first.start(tiny(**{"training.max_steps": 2}))
    assert done.wait(120) == "finished"
    live = first.start(tiny(**{"distributed.launcher": "python", "training.max_steps": 30}))
    wait_for(lambda: live.status == "running", timeout=240, what="worker running")

    # a run whose worker died while no controller watched
    lost = first.store.create(tiny())
    (lost.path / "worker.json").write_text(json.dumps({"mode": "process", "pid": 2 ** 22 + 12345}))
    (lost.path / "events.jsonl").write_text(json.dumps({"type": "step", "time": 1.0, "step": 1, "loss": 0.5}) + "\n")

    # a run queued by a controller that is gone
    orphan = first.store.create(tiny())
    (orphan.path / "worker.json").write_text(json.dumps({"mode": "queued", "pid": 2 ** 22 + 12346}))

    second = Controller()  # as after a kernel restart
    assert [r.id for r in second.runs] == sorted([done.id, live.id, lost.id, orphan.id])
    assert second.get(orphan.id).status == "failed" and second.get(orphan.id).summary["reason"] == QUEUED_REASON
    assert second.get(done.id).status == "finished"
    again = second.get(lost.id)
    assert again.status == "failed" and again.summary["reason"] == AWAY_REASON
    assert again.events[0]["step"] == 1 and again.events[-1]["type"] == "ended"
    attached = second.get(live.id)
    assert attached.status in ("starting", "running")
    assert attached.wait(240) == "finished"
    assert [s for s, _ in attached.steps()] == list(range(1, 31))
    assert live.wait(30) == "finished"



def test_a_run_found_before_its_owner_record_is_followed_once_the_record_appears():
    """A controller elsewhere has just made the folder (no worker.json yet): this one follows it to its end."""
    from _fakes import training_events
    from ftkit.liveness import owner_record

    first = Controller()
    record = first.store.create(tiny(**{"training.max_steps": 5}))
    events = training_events(5, eval_every=0)
    (record.path / "events.jsonl").write_text(json.dumps(events[0]) + "\n")
    seen = []
    run = Controller().get(record.id)  # while the folder is young and has no owner record
    run.subscribe(seen.append)
    assert not run.done
    (record.path / "worker.json").write_text(json.dumps(owner_record("thread", os.getpid())))
    with open(record.path / "events.jsonl", "a") as f:
        for event in events[1:]:
            f.write(json.dumps(event) + "\n")
    assert run.wait(30) == "finished"
    assert [s for s, _ in run.steps()] == [1, 2, 3, 4, 5]
    wait_for(lambda: seen and seen[-1]["type"] == "ended", timeout=10, what="the ended event delivered")
    assert [e["step"] for e in seen if e["type"] == "step"] == [1, 2, 3, 4, 5]

# ---- several ranks ---------------------------------------------------------------------------

@pytest.fixture
def ds_env(monkeypatch):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", os.environ.get("TORCH_EXTENSIONS_DIR")
                       or str(REPO / ".cache" / "torch_extensions"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def two_rank_zero2(**changes) -> RunConfig:
    return tiny(**{"training.batch_size": 4, "distributed.num_processes": 2, "distributed.zero_stage": 2,
                   "distributed.launcher": "torchrun", **changes})


@pytest.mark.slow
def test_deepspeed_checkpoint_resumes_where_it_stopped(ds_env):
    controller = Controller()
    whole = controller.start(two_rank_zero2())
    assert whole.wait(300) == "finished", whole.log_tail(30)
    cut = controller.start(two_rank_zero2())
    wait_for(lambda: len(cut.steps()) >= 4, timeout=300, what="four steps")
    cut.stop()
    assert cut.wait(300) == "stopped", cut.log_tail(30)
    stopped_at = max(losses(cut))
    checkpoint = cut.checkpoints()[-1]
    assert checkpoint.name == f"checkpoint-{stopped_at}" and any(checkpoint.glob("global_step*"))
    resumed = controller.start(two_rank_zero2(resume_from=str(checkpoint)))
    assert resumed.wait(300) == "finished", resumed.log_tail(30)
    after = losses(resumed)
    assert sorted(after) == list(range(stopped_at + 1, 13))
    reference = losses(whole)
    for step, loss in after.items():
        assert abs(loss - reference[step]) <= RESUME_TOLERANCE, (step, loss, reference[step])
    worst = max(abs(loss - reference[step]) for step, loss in after.items())
    print(f"\n[zero2 resume] stopped at {stopped_at}, max |resumed - uninterrupted| loss = {worst:.2e}")


@pytest.mark.slow
def test_one_rank_dying_fails_the_run_with_the_reason(ds_env):
    run = Controller().start(two_rank_zero2(**{"training.max_steps": 400}))
    wait_for(lambda: len(run.steps()) >= 2, timeout=300, what="two steps")
    pid = json.loads((run.path / "ranks" / "rank-1.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    assert run.wait(120) == "failed"
    final = run.events[-1]
    assert final["type"] == "ended" and "rank 1" in final["reason"], final["reason"]
    assert final["log_tail"]
    steps = [s for s, _ in run.steps()]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) >= 2


def test_kill_ends_a_worker_at_once_as_stopped():
    run = Controller().start(tiny(**{"distributed.launcher": "python", "training.max_steps": 400}))
    wait_for(lambda: len(run.steps()) >= 2, timeout=240, what="two steps")
    run.kill()
    assert run.wait(60) == "stopped"
    assert run.events[-1]["reason"] == "killed on request" and run.summary["status"] == "stopped"


def test_a_worker_dying_of_memory_is_explained_with_the_first_setting_to_lower():
    from ftkit.diagnose import death_reason

    controller = Controller()
    config = tiny(**{"training.batch_size": 16})
    record = controller.store.create(config)
    (record.path / "logs" / "worker.log").write_text("step 3\ntorch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2 GiB\n")
    reason = death_reason(record.path, config, 1, attached=True)
    assert reason.startswith("worker exited with code 1") and "training.batch_size (now 16)" in reason
    (record.path / "logs" / "worker.log").write_text("step 3\n")
    reason = death_reason(record.path, config, -9, attached=True)
    assert "SIGKILL" in reason and "out-of-memory killer" in reason and "batch_size" in reason
