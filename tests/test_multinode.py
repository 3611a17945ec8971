"""Two machines on one: two torchrun agents (node_rank 0 and 1, one gloo rank each) meet through c10d and
train the same loss curve as one agent with two ranks; a node that never arrives fails the run with the
command that would have started it."""
import os
import subprocess
import sys
import time

import pytest

from ftkit import launch
from ftkit.config import RunConfig

from test_zero import two_ranks  # noqa: F401  (the same tiny 2-rank configs)

pytestmark = pytest.mark.slow


@pytest.fixture
def ds_env(monkeypatch):
    from test_zero import REPO

    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", os.environ.get("TORCH_EXTENSIONS_DIR")
                       or str(REPO / ".cache" / "torch_extensions"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def two_nodes(config: RunConfig, **distributed) -> RunConfig:
    changes = {"distributed.launcher": "torchrun", "distributed.num_processes": 1, "distributed.num_nodes": 2,
               "distributed.master_port": launch.free_port()}
    changes.update({f"distributed.{k}": v for k, v in distributed.items()})
    return config.update(changes)


def join(run, node_rank=1):
    """What a user pastes on the second machine: the command node 0 printed."""
    (line,) = launch.join_commands(run.config, run.path)
    assert line.endswith(f"--node-rank {node_rank}")
    argv = [sys.executable, "-m", "ftkit.cli"] + line.split()[1:]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


CASES = {"full-zero2": dict(stage=2), "lora-zero3": dict(stage=3, method="lora")}


@pytest.mark.parametrize("case", list(CASES))
def test_two_nodes_meet_and_train_the_one_node_loss_curve(case, ds_env, figure):
    from ftkit.controller import Controller

    config = two_ranks(**CASES[case], launcher="torchrun").update({"training.max_steps": 4})
    controller = Controller()
    one = controller.start(config)
    assert one.wait(300) == "finished", (one.summary or {}).get("reason")

    t0 = time.time()
    run = controller.start(two_nodes(config))
    node1 = join(run)
    out, _ = node1.communicate(timeout=300)
    assert run.wait(60) == "finished", (run.summary or {}).get("reason")
    assert node1.returncode == 0 and "joining run" in out, out
    started = next(e for e in run.events if e["type"] == "started")
    met_s = started["time"] - t0
    assert started["world_size"] == 2
    a, b = one.steps(), run.steps()
    assert [s for s, _ in a] == [s for s, _ in b] == [1, 2, 3, 4]
    diff = max(abs(x - y) for (_, x), (_, y) in zip(a, b))
    assert diff < 1e-4, (a, b)
    step = [e for e in run.events if e["type"] == "step"][-1]
    assert step["rank_nodes"] == [0, 1] or step["rank_nodes"] == [1, 0]
    assert len(step["rank_rss_mb"]) == 2 and all(r and r > 50 for r in step["rank_rss_mb"])
    assert set(run.state().node_rss_mb) == {0, 1}
    assert_shown_like_any_run(run)
    figure(f"[{case}] two nodes vs one: max loss difference {diff:.2e} over {len(a)} steps; "
           f"start to first event on both nodes {met_s:.1f} s")


def assert_shown_like_any_run(run):
    """The runs panel's row, the dashboard and the comparison's row of a finished two-node run."""
    from ftkit.comparison.results import run_row
    from ftkit.jupyter.runs import RunRows
    from ftkit.widgets.dashboard import Dashboard

    row = RunRows(run.path.parent).row(run.path)
    assert (row["status"], row["steps"], row["nodes"], row["launcher"]) == ("finished", 4, 2, "torchrun"), row
    assert set(row["node_rss_mb"]) == {"0", "1"} and len(row["rank_rss_mb"]) == 2, row
    dash = Dashboard(run, interval=None)
    dash.flush()
    label = dash.progress_label.value
    assert "step 4 / 4" in label and "RSS per rank" in label and "per node 0: " in label and ", 1: " in label, label
    compared = run_row({"run": run, "arm": "two nodes", "seed": 0, "phase": "final", "lr": None}, None)
    assert (compared["status"], compared["steps"]) == ("finished", 4) and compared["final_train_loss"], compared


def test_a_node_that_never_arrives_fails_the_run_with_the_command_to_start_it(ds_env, figure):
    from ftkit.controller import Controller

    config = two_nodes(two_ranks(stage=2, launcher="torchrun"), rendezvous_timeout=5)
    run = Controller().start(config)
    assert run.wait(120) == "failed"
    reason = run.summary["reason"]
    port = config.distributed.master_port
    assert reason == (f"waited 5 s for 1 of 2 nodes at 127.0.0.1:{port}: start it with "
                      f"ftkit join {run.path} --node-rank 1"), reason
    figure(f"[missing node] {reason}")
