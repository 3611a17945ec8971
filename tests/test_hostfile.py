"""DeepSpeed's own multi-node launcher (pdsh over ssh) with a hostfile naming localhost, against a real sshd
on 127.0.0.1 started here: a 2-rank run trains and its events reach the run folder; a host that cannot be
reached fails the run naming it."""
import os

import pytest

from _sshd import start_sshd, stop_sshd
from test_zero import REPO, two_ranks

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sshd")
    services = start_sshd(tmp)
    yield services
    stop_sshd(tmp)


@pytest.fixture
def env(sshd, monkeypatch):
    monkeypatch.setenv("PATH", f"{sshd['bin']}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", os.environ.get("TORCH_EXTENSIONS_DIR")
                       or str(REPO / ".cache" / "torch_extensions"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def hostfile_run(tmp_path, host):
    hosts = tmp_path / "hostfile"
    hosts.write_text(f"{host} slots=2\n")
    return two_ranks(stage=2, method="lora", launcher="deepspeed", hostfile=str(hosts)).update(
        {"training.max_steps": 4})


def test_a_two_rank_run_over_pdsh_and_ssh_trains_into_the_run_folder(env, tmp_path):
    from ftkit.controller import Controller

    run = Controller().start(hostfile_run(tmp_path, "localhost"))
    assert run.wait(400) == "finished", (run.summary or {}).get("reason")
    assert [s for s, _ in run.steps()] == [1, 2, 3, 4]
    assert next(e for e in run.events if e["type"] == "started")["world_size"] == 2
    log = (run.path / "logs" / "worker.log").read_text(errors="replace")
    assert "pdsh" in log and "localhost:" in log, log[-2000:]  # pdsh prefixes each line with the host
    assert "DS_ACCELERATOR=cpu" in (run.path / ".deepspeed_env").read_text()


def test_a_host_that_cannot_be_reached_is_named(env, tmp_path, figure):
    from ftkit.controller import Controller

    run = Controller().start(hostfile_run(tmp_path, "ftkit-no-such-host"))
    assert run.wait(120) == "failed"
    reason = run.summary["reason"]
    assert reason.startswith("host ftkit-no-such-host from distributed.hostfile"), reason
    figure(f"[unreachable host] {reason}")
