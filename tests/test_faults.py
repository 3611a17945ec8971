"""Faults: a worker killed mid-step and mid-checkpoint, a full disk, four runs started at once.

After each the run store must be consistent (valid event lines, one final
event, a summary that agrees with it, only complete checkpoints offered),
earlier runs byte-for-byte untouched, and a resumed run must continue at the
right step with the losses of a run that was never interrupted.
"""
import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ftkit.config import RunConfig
from ftkit.controller import Controller
from ftkit.events import EVENT_TYPES, FINAL_STATUSES
from ftkit.store import RunRecord, RunStore

#: resumed losses must match an uninterrupted run's to this (as in test_controller)
RESUME_TOLERANCE = 1e-4
MAX_STEPS, SAVE_STEPS = 8, 3


def tiny(**changes) -> RunConfig:
    """Full fine-tuning of the tiny Llama: a checkpoint is ~44 MB (weights and Adam state)."""
    base = {
        "model.name_or_path": "builtin:tiny-llama",
        "task.name": "classification",
        "method.name": "full",
        "data.max_train_samples": 16,
        "data.max_eval_samples": 8,
        "training.max_steps": MAX_STEPS,
        "training.save_steps": SAVE_STEPS,
        "training.batch_size": 8,
        "training.max_seq_length": 32,
        "training.learning_rate": 3e-4,
        "training.logging_steps": 1,
        "training.eval_steps": 0,
    }
    return RunConfig().update({**base, **changes})


def wait_for(predicate, run, timeout=400.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline and not run.done:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"{'timed out' if not run.done else run.status} waiting for {what}: "
                         + "\n".join(run.log_tail(30)))


def losses(run) -> dict:
    return dict(run.steps())


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with the hash of its bytes."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_consistent(record: RunRecord) -> list[dict]:
    """The run's record on disk agrees with itself; returns its events."""
    raw = (record.path / "events.jsonl").read_bytes()
    assert raw.endswith(b"\n"), "events.jsonl ends in a partial line"
    events = [json.loads(line) for line in raw.splitlines()]  # every line is whole JSON
    assert all(e["type"] in EVENT_TYPES for e in events)
    ends = [e for e in events if e["type"] == "ended"]
    assert len(ends) == 1 and events[-1] is ends[0], "one final event, last"
    summary = json.loads((record.path / "summary.json").read_text())
    assert summary["status"] == ends[0]["status"] == record.status and summary["status"] in FINAL_STATUSES
    assert summary["reason"] == ends[0]["reason"]
    steps = [e["step"] for e in events if e["type"] == "step"]
    start = next((e["start_step"] for e in events if e["type"] == "started"), 0)
    assert steps == list(range(start + 1, start + 1 + len(steps))), steps
    assert summary["steps"] == (steps[-1] if steps else 0)
    for checkpoint in record.checkpoints():
        assert json.loads((checkpoint / "trainer_state.json").read_text())["global_step"] == int(checkpoint.name.split("-")[1])
    if summary.get("checkpoint"):
        assert Path(summary["checkpoint"]).resolve() in [p.resolve() for p in record.checkpoints()]
    leftovers = [p.name for p in record.path.rglob("*.tmp*")]
    assert not leftovers, leftovers
    return events


def assert_resumes(controller: Controller, resume_from: str, at: int, reference: dict) -> None:
    """A run resumed from ``resume_from`` starts after step ``at`` and matches the uninterrupted losses."""
    resumed = controller.start(tiny(resume_from=resume_from))
    assert resumed.wait(300) == "finished", resumed.summary and resumed.summary["reason"]
    events = assert_consistent(resumed.record)
    assert next(e for e in events if e["type"] == "started")["start_step"] == at
    after = losses(resumed)
    assert sorted(after) == list(range(at + 1, MAX_STEPS + 1))
    worst = max(abs(loss - reference[step]) for step, loss in after.items())
    assert worst <= RESUME_TOLERANCE, (after, reference)
    print(f"\n[resume from step {at}] max |resumed - uninterrupted| loss = {worst:.2e}")


def kill_group(run) -> None:
    """SIGKILL the worker and everything it started (it leads its own session)."""
    try:
        os.killpg(run.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def reference(tmp_path_factory, _model_cache):
    """An uninterrupted in-kernel run of the same config: its losses per step and its folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FTKIT_CACHE", _model_cache)
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
            mp.setenv(name, "1")
        run = Controller(runs_dir=str(tmp_path_factory.mktemp("reference"))).start(tiny())
        assert run.wait(300) == "finished", run.summary["reason"]
    return {"losses": losses(run), "path": run.path}


def plant_earlier_run(root: Path, reference: dict) -> Path:
    """A finished run already in the store (the reference's record, without its checkpoints)."""
    root.mkdir(parents=True, exist_ok=True)
    folder = root / reference["path"].name
    shutil.copytree(reference["path"], folder, ignore=shutil.ignore_patterns("checkpoints"))
    assert RunStore(root).get(folder.name).status == "finished"
    return folder


# ---- the worker killed -------------------------------------------------------------------------


@pytest.mark.slow
def test_sigkill_during_a_step_keeps_the_record_and_resumes(reference):
    controller = Controller()
    earlier = plant_earlier_run(controller.root, reference)
    before = snapshot(earlier)
    run = controller.start(tiny(**{"distributed.launcher": "python"}))
    try:
        wait_for(lambda: len(run.steps()) >= SAVE_STEPS + 1, run, what=f"step {SAVE_STEPS + 1}")
    finally:
        kill_group(run)
    assert run.wait(60) == "failed"
    events = assert_consistent(run.record)
    assert "SIGKILL" in events[-1]["reason"] and events[-1]["exit_code"] == -signal.SIGKILL
    killed_at = max(losses(run))
    assert SAVE_STEPS < killed_at < MAX_STEPS
    last = run.checkpoints()[-1]  # the latest complete one: step 3 (or 6, had the worker got that far)
    at = int(last.name.split("-")[1])
    assert at % SAVE_STEPS == 0 and at <= killed_at
    for step, loss in losses(run).items():  # the worker process trained exactly as the in-kernel run
        assert abs(loss - reference["losses"][step]) <= RESUME_TOLERANCE
    assert snapshot(earlier) == before
    killed = snapshot(run.path)

    again = Controller()  # as after a kernel restart: the killed run reloads as it was left
    assert again.get(run.id).status == "failed" and again.get(run.id).events == events
    assert_resumes(again, run.id, at, reference["losses"])
    assert snapshot(run.path) == killed and snapshot(earlier) == before  # resuming reads, never writes


@pytest.mark.slow
def test_sigkill_inside_a_checkpoint_write_resumes_from_the_last_complete_one(reference):
    controller = Controller()
    earlier = plant_earlier_run(controller.root, reference)
    before = snapshot(earlier)
    run = controller.start(tiny(**{"distributed.launcher": "python"}))
    # the second checkpoint's optimizer file is a FIFO: opening it for writing blocks, so the
    # worker sits inside the save, with the weights written and trainer_state.json not yet
    half = run.path / "checkpoints" / f"checkpoint-{2 * SAVE_STEPS}"
    half.mkdir(parents=True)
    os.mkfifo(half / "optimizer.pt")
    try:
        wait_for(lambda: (half / "training_args.bin").exists(), run,
                 what="the worker inside the checkpoint write")
        assert (half / "model.safetensors").stat().st_size > 1e6 and not (half / "trainer_state.json").exists()
    finally:
        kill_group(run)
    assert run.wait(60) == "failed"
    (half / "optimizer.pt").unlink()
    (half / "optimizer.pt").write_bytes(b"PK\x03\x04")  # what a killed writer leaves: a cut file

    events = assert_consistent(run.record)
    assert "SIGKILL" in events[-1]["reason"]
    assert max(losses(run)) == 2 * SAVE_STEPS  # killed after logging step 6, inside its save
    assert [p.name for p in run.checkpoints()] == [f"checkpoint-{SAVE_STEPS}"]
    assert run.summary["checkpoint"].endswith(f"checkpoint-{SAVE_STEPS}")
    # a kill inside trainer_state.json's own write leaves it cut short: still not a checkpoint
    (half / "trainer_state.json").write_text('{"global_step": 6, "log_hist')
    assert [p.name for p in run.record.checkpoints()] == [f"checkpoint-{SAVE_STEPS}"]
    assert snapshot(earlier) == before

    assert_resumes(controller, run.id, SAVE_STEPS, reference["losses"])
    assert snapshot(earlier) == before


# ---- a full disk -------------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(folder: Path, size: str):
    """A real small disk mounted at ``folder`` (yields it), or None where mounting is not allowed."""
    folder.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                 capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        mounted = False
    try:
        yield folder if mounted else None
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False, timeout=30)


@pytest.fixture
def small_disk(tmp_path):
    """80 MB: room for a finished run and one checkpoint, not two (None: the test simulates the error)."""
    with tmpfs(tmp_path / "disk", "80m") as folder:
        yield folder


def fail_second_save_with_enospc(monkeypatch) -> None:
    """Without a small disk to fill: the second checkpoint's optimizer write fails as on a full one."""
    from transformers import Trainer

    original = Trainer._save_optimizer_and_scheduler

    def save(self, output_dir):
        if self.state.global_step == 2 * SAVE_STEPS:
            Path(output_dir, "optimizer.pt").write_bytes(b"PK\x03\x04")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(Path(output_dir, "optimizer.pt")))
        return original(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", save)


@pytest.mark.slow
def test_a_full_disk_fails_the_run_with_the_fix_and_keeps_the_record(reference, small_disk, tmp_path):
    root = (small_disk or tmp_path / "simulated") / "runs"
    earlier = plant_earlier_run(root, reference)
    before = snapshot(earlier)
    with pytest.MonkeyPatch.context() as patch:
        if small_disk is None:
            fail_second_save_with_enospc(patch)
        run = Controller(runs_dir=str(root)).start(tiny())
        assert run.wait(300) == "failed"

    events = assert_consistent(run.record)
    reason = events[-1]["reason"]
    assert reason.startswith(f"no space left on device holding {run.path}: free space there, or set runs_dir"), reason
    assert sorted(losses(run)) == list(range(1, 2 * SAVE_STEPS + 1))  # every step up to the failed save kept
    assert [p.name for p in (run.path / "checkpoints").iterdir()] == [f"checkpoint-{SAVE_STEPS}"]  # the cut one went
    assert run.checkpoints() == [run.path / "checkpoints" / f"checkpoint-{SAVE_STEPS}"]
    assert not (run.path / "final").exists() and run.summary["final_dir"] is None
    assert [r.id for r in RunStore(root).runs()] == sorted([earlier.name, run.id])
    assert snapshot(earlier) == before
    if small_disk is not None:
        assert shutil.disk_usage(small_disk).free > 15e6  # the half-written checkpoint's room came back

    # as the message says: resume into a runs_dir with room
    assert_resumes(Controller(runs_dir=str(tmp_path / "roomy")), str(run.checkpoints()[-1]), SAVE_STEPS,
                   reference["losses"])
    assert snapshot(earlier) == before


def test_amending_the_final_event_on_a_full_disk_keeps_the_original(tmp_path, monkeypatch):
    from ftkit.records import replace_last_line

    lines = [{"type": "step", "time": 1.0, "step": i, "loss": 0.5} for i in (1, 2)]
    lines.append({"type": "ended", "time": 2.0, "status": "failed", "reason": "worker failed"})
    amended = dict(lines[-1], reason="rank 1 was killed by SIGKILL", log_tail=["x" * 100] * 100)  # ~10 kB
    with tmpfs(tmp_path / "disk", "64k") as disk:
        path = (disk or tmp_path) / "events.jsonl"
        path.write_text("".join(json.dumps(e) + "\n" for e in lines))
        original = path.read_bytes()
        if disk is not None:  # fill every free page: the longer line cannot fit
            with open(disk / "ballast", "wb", buffering=0) as f, pytest.raises(OSError) as full:
                while True:
                    f.write(b"\0" * 4096)
            assert full.value.errno == errno.ENOSPC
        else:  # a short write, then ENOSPC, as on a full disk
            import ftkit.records as records

            real = records.write_all

            def short_then_full(f, data):
                monkeypatch.setattr(records, "write_all", real)
                f.write(bytes(data[: len(data) // 2]))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

            monkeypatch.setattr(records, "write_all", short_then_full)
        with pytest.raises(OSError):
            replace_last_line(path, amended)
        assert path.read_bytes() == original  # the final event is never lost
        if disk is not None:
            (disk / "ballast").unlink()
        replace_last_line(path, amended)
        assert [json.loads(line) for line in path.read_text().splitlines()] == lines[:-1] + [amended]


# ---- four at once ------------------------------------------------------------------------------


@pytest.mark.slow
def test_four_cli_runs_started_at_once_get_their_own_records(tmp_path, isolated_env):
    config = tmp_path / "race.yaml"
    tiny(name="race", **{"training.max_steps": 2, "training.save_steps": 0}).to_yaml(config)
    cmd = [sys.executable, "-m", "ftkit.cli"]
    procs = [subprocess.Popen(cmd + ["train", str(config), "--quiet"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(4)]
    try:
        outs = [p.communicate(timeout=400)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0] * 4, "\n".join(o[-1500:] for o in outs)

    listed = json.loads(subprocess.run(cmd + ["runs", "--json"], capture_output=True, text=True,
                                       check=True, timeout=120).stdout)
    assert len(listed) == 4 and len({r["id"] for r in listed}) == 4 and len({r["path"] for r in listed}) == 4
    assert all(r["id"].split("-")[2] == "race" for r in listed)  # one label: only the random suffix differs
    assert [r["status"] for r in listed] == ["finished"] * 4 and [r["steps"] for r in listed] == [2] * 4
    ids_printed = sorted(re.search(r"^run (\S+) in ", out, re.M).group(1) for out in outs)
    assert ids_printed == sorted(r["id"] for r in listed)  # each process reports its own run
    spans = []
    for row in listed:
        events = assert_consistent(RunStore().get(row["id"]))
        assert json.loads((Path(row["path"]) / "worker.json").read_text())["mode"] == "thread"
        spans.append((events[0]["time"], events[-1]["time"]))
    # at once: none waited for another to end (a controller must not queue behind another process's run)
    assert max(s for s, _ in spans) < min(e for _, e in spans), spans
    print(f"\n[four at once] wall {max(e for _, e in spans) - min(s for s, _ in spans):.1f} s")


def test_another_process_in_kernel_run_does_not_queue_ours(isolated_env):
    import psutil

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        # a run training in another kernel, as a fresh controller finds it on disk
        foreign = RunStore().create(tiny())
        (foreign.path / "worker.json").write_text(json.dumps(
            {"mode": "thread", "pid": other.pid, "create_time": psutil.Process(other.pid).create_time()}))
        (foreign.path / "events.jsonl").write_text(json.dumps({"type": "started", "time": time.time()}) + "\n")
        controller = Controller()
        assert controller.get(foreign.id).status == "running"
        ours = controller.start(tiny(**{"training.max_steps": 1, "training.save_steps": 0}))
        assert ours.status != "queued"  # it starts now, not when the other kernel's run ends
        assert ours.wait(300) == "finished"
        assert controller.get(foreign.id).status == "running"
    finally:
        other.kill()
        other.wait()
    assert controller.get(foreign.id).wait(30) == "failed"  # its process gone: closed, never dropped


# ---- interrupts of `ftkit train` -------------------------------------------------------------------


def _first_run_with_a_checkpoint(proc, timeout=300.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        runs = RunStore().runs()
        if runs and runs[0].checkpoints():
            return runs[0]
        if proc.poll() is not None:
            raise AssertionError("ftkit train ended early:\n" + proc.communicate()[1][-3000:])
        time.sleep(0.1)
    raise AssertionError("no checkpoint in time")


@pytest.mark.slow
@pytest.mark.parametrize("signals", [("SIGINT", "SIGINT"), ("SIGTERM",), ("SIGHUP",)],
                         ids=["two-ctrl-c", "sigterm", "sighup"])
def test_interrupts_abandon_a_cli_run_cleanly(tmp_path, isolated_env, signals):
    config = tmp_path / "long.yaml"
    tiny(name="long", **{"training.max_steps": 2000}).to_yaml(config)
    proc = subprocess.Popen([sys.executable, "-m", "ftkit.cli", "train", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        record = _first_run_with_a_checkpoint(proc)
        for name in signals:  # two presses well within a second
            proc.send_signal(getattr(signal, name))
            time.sleep(0.05)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + getattr(signal, signals[-1]), (proc.returncode, err[-3000:])
    assert "Traceback" not in err and "terminate called" not in err, err[-3000:]
    events = assert_consistent(record)  # closed with one `ended`, last; summary agrees
    summary = record.summary
    assert record.status == events[-1]["status"] == "stopped"
    if len(signals) == 2 and summary["reason"] == "stopped on request":
        # the first press's stop was taken before the second came: its last save was let finish
        assert summary["checkpoint"].endswith(f"checkpoint-{summary['steps']}"), summary
        assert f"run {record.id}: stopped (stopped on request" in out
        return
    assert summary["reason"].startswith("abandoned on ")
    assert record.checkpoints() and str(record.checkpoints()[-1]) in summary["reason"]  # the last complete one kept
    assert f"run {record.id}: stopped (abandoned" in out


# ---- a runs folder that cannot be written ------------------------------------------------------------


def test_a_read_only_runs_folder_fails_with_the_fix_and_keeps_the_record(isolated_env, monkeypatch):
    import transformers

    import ftkit.engine.train as engine_train

    def refused(self, *args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self.args.output_dir))

    real_write = engine_train.write_json

    def no_summary(path, data, *args, **kwargs):
        if Path(path).name == "summary.json":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))
        return real_write(path, data, *args, **kwargs)

    monkeypatch.setattr(transformers.Trainer, "_save_checkpoint", refused)
    monkeypatch.setattr(engine_train, "write_json", no_summary)
    run = Controller().start(tiny(**{"training.max_steps": 4, "training.save_steps": 2}))
    assert run.wait(300) == "failed"
    reason = run.events[-1]["reason"]
    assert reason.startswith("permission denied writing") and "chmod" in reason and "runs_dir" in reason
    record = RunStore().get(run.id)
    assert not (record.path / "summary.json").exists()
    assert record.status == "failed" and record.summary["reason"] == reason  # read from the final event
