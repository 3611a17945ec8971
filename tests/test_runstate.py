"""Typed events, the one reducer (RunState), summaries of every age, liveness, and closing dead runs."""
import json
import os
import subprocess
import sys
import time

import psutil
import pytest

from ftkit.config import RunConfig
from ftkit.events import SCHEMA_VERSION, JsonlWriter, Step, make_event, parse, read_events
from ftkit.liveness import AWAY_REASON, judge
from ftkit.records import close, close_if_dead
from ftkit.runstate import RunState, read_summary
from ftkit.store import RunStore

from _fakes import dead_pid as _dead_pid, killed_run as _killed_run


def test_events_are_declared_types_with_a_schema_version():
    event = make_event("step", step=3, loss=0.5, rss_mb=900.0)
    assert event["v"] == SCHEMA_VERSION and event["type"] == "step"
    typed = parse(event)
    assert isinstance(typed, Step) and typed.step == 3 and typed.loss == 0.5 and typed.grad_norm is None
    with pytest.raises(TypeError, match="step events have no field"):
        make_event("step", step=1, lose=0.5)  # a typo is caught where the event is made
    old = parse({"type": "ended", "time": 1.0, "status": "failed", "reason": "x", "legacy": 1})
    assert old.v == 0 and old.status == "failed" and old.extra == {"legacy": 1}


def test_reducer_folds_a_run_into_one_view():
    events = [make_event("status", status="starting"),
              make_event("started", max_steps=10, start_step=0, metric="accuracy", greater_is_better=True)]
    events += [make_event("step", step=s, loss=1.0 / s, rss_mb=100.0 + s, rank_peak_rss_mb=[110.0, 120.0])
               for s in range(1, 11)]
    events += [make_event("eval", step=5, metrics={"accuracy": 0.9}), make_event("eval", step=10, metrics={"accuracy": 0.8})]
    state = RunState.fold(events)
    assert (state.status, state.step, state.max_steps) == ("running", 10, 10)
    assert state.loss_first == 1.0 and state.loss_last == 0.1 and len(state.losses) == 10
    assert state.best == {"metric": "accuracy", "value": 0.9, "step": 5} and state.metrics == {"accuracy": 0.8}
    assert state.peak_rss_mb == 110.0 and state.rank_peak_rss_mb == [110.0, 120.0]
    assert not state.apply(events[-1])  # the same evaluation reported twice changes nothing
    assert len(state.evals) == 2


def test_a_killed_run_that_evaluated_keeps_its_best(isolated_env):
    record = _killed_run(RunStore())
    event = close(record.path, "failed", "worker killed by SIGKILL")
    summary = record.summary
    assert summary["best"] == {"metric": "accuracy", "value": 1.0, "step": 40}  # was null
    assert summary["metrics"]["accuracy"] == 0.75 and event["summary"] == summary
    assert summary["trainable_pct"] == 1.0 and summary["steps"] == 60
    # a second closer finds it closed and adds nothing
    close(record.path, "failed", "again")
    assert [e["type"] for e in record.events()].count("ended") == 1


def test_every_summary_the_store_can_hold_reads_with_every_key():
    old = {"run_id": "x", "status": "failed", "reason": "rank 1 was killed", "steps": 3, "trainable_params": 5,
           "total_params": 50, "measured_peak_mb": 315.0, "peak_rss_mb": 840.0}
    s = read_summary(old)
    assert s["trainable_pct"] == 10.0 and s["run_peak_mb"] == 315.0 and s["metrics"] == {} and s["best"] is None
    assert read_summary({})["status"] == "failed"


def test_liveness_is_judged_from_the_owner_record(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert judge(run).alive  # just created: its owner record follows
    me = psutil.Process()
    (run / "worker.json").write_text(json.dumps({"mode": "thread", "pid": me.pid, "create_time": me.create_time()}))
    assert judge(run).alive
    pid, created = _dead_pid()
    (run / "worker.json").write_text(json.dumps({"mode": "process", "pid": pid, "create_time": created}))
    (run / "events.jsonl").write_text("")
    assert judge(run) .reason == AWAY_REASON and not judge(run).alive
    # a worker whose controller still runs: that controller closes it, nobody else
    (run / "worker.json").write_text(json.dumps({"mode": "process", "pid": pid, "create_time": created,
                                                 "owner_pid": os.getppid()}))
    assert judge(run).alive


def test_close_if_dead_closes_only_dead_runs(isolated_env):
    record = _killed_run(RunStore())
    assert close_if_dead(record) and record.status == "failed"
    assert record.summary["reason"] == AWAY_REASON
    assert not close_if_dead(record)  # closed once
    events = read_events(record.path / "events.jsonl")[0]
    assert events[-1]["type"] == "ended" and events[-1]["status"] == "failed"


def test_the_record_stays_readable_when_summary_json_could_not_be_written(isolated_env):
    record = _killed_run(RunStore())
    writer = JsonlWriter(record.path / "events.jsonl")
    writer(make_event("ended", status="failed", reason="permission denied", summary={"status": "failed", "steps": 60}))
    writer.close()
    assert not (record.path / "summary.json").exists()
    assert record.status == "failed" and record.summary["steps"] == 60


def test_run_ids_match_any_unique_part_and_ambiguous_parts_list_the_matches(isolated_env):
    store = RunStore()
    a = store.create(RunConfig.preset("demo").update({"name": "alpha-one"}))
    b = store.create(RunConfig.preset("demo").update({"name": "beta-one"}))
    assert store.get("alpha").id == a.id and store.get("beta").id == b.id  # a middle part
    with pytest.raises(KeyError) as found:
        store.get("one")
    message = found.value.args[0]
    assert "matches 2 runs" in message and a.id in message and b.id in message
    with pytest.raises(KeyError, match="no run 'gamma'"):
        store.get("gamma")


def test_a_run_folder_written_before_the_schema_version_still_loads(isolated_env):
    """Event lines exactly as older ftkit wrote them: no "v", no metric in `started`."""
    record = RunStore().create(RunConfig.preset("demo"))
    lines = [{"type": "status", "time": 1.0, "status": "starting", "pid": 1, "rss_mb": 500.0},
             {"type": "started", "time": 2.0, "max_steps": 4, "start_step": 0, "trainable_params": 10,
              "total_params": 100},
             *[{"type": "step", "time": 2.0 + s, "step": s, "loss": 1.0 / s, "rss_mb": 600.0} for s in range(1, 5)],
             {"type": "eval", "time": 7.0, "step": 4, "metrics": {"accuracy": 0.75}},
             {"type": "ended", "time": 8.0, "status": "finished", "reason": None}]
    (record.path / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    state = record.state()
    assert (state.status, state.step, state.loss_last) == ("finished", 4, 0.25)
    assert state.best == {"metric": "accuracy", "value": 0.75, "step": 4}  # the metric from the run's task
    assert record.status == "finished" and parse(lines[1]).v == 0
