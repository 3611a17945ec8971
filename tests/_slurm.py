"""A real Slurm on this machine for the tests: munge, slurmctld and one slurmd on 127.0.0.1, all under
one temp dir (own munge socket, own ports), stopped at the end. In CI (CI=true) missing packages fail
loudly instead of skipping: .ci/run installs them (apt-get install -y slurm-wlm munge)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

TOOLS = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol", "scancel", "sinfo")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _need_tools() -> None:
    missing = [t for t in TOOLS if shutil.which(t) is None and not Path("/usr/sbin", t).exists()]
    if not missing:
        return
    message = f"Slurm tests need {', '.join(missing)}: apt-get install -y slurm-wlm munge"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _stop(pidfile: Path) -> None:
    """SIGTERM, then SIGKILL after 10 s: a slurmd whose controller is gone can ignore the first."""
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 15)
    except (OSError, ValueError):
        return
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.2)
    try:
        os.kill(pid, 9)
    except OSError:
        pass


def start_slurm(tmp: Path) -> dict:
    """Start munged, slurmctld and slurmd; return the environment that points Slurm's commands at them."""
    _need_tools()
    if os.geteuid() != 0:
        pytest.fail("the Slurm fixture runs its daemons as root (SlurmUser=root)", pytrace=False)
    host = subprocess.run(["hostname", "-s"], capture_output=True, text=True).stdout.strip()
    sock = tmp / "munge.sock"
    key = tmp / "munge.key"
    key.write_bytes(os.urandom(128))
    key.chmod(0o600)
    subprocess.run(["/usr/sbin/munged", "--force", f"--socket={sock}", f"--key-file={key}",
                    f"--pid-file={tmp / 'munged.pid'}", f"--log-file={tmp / 'munged.log'}",
                    f"--seed-file={tmp / 'munged.seed'}"], check=True, capture_output=True)
    conf = tmp / "slurm.conf"
    cpus = os.cpu_count() or 2
    conf.write_text("\n".join([
        "ClusterName=ftkit-test", f"SlurmctldHost={host}(127.0.0.1)",
        f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
        "AuthType=auth/munge", "CredType=cred/munge", f"AuthInfo=socket={sock}",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none",
        "SelectType=select/cons_tres", "SelectTypeParameters=CR_Core", "SlurmUser=root",
        f"SlurmctldPidFile={tmp / 'slurmctld.pid'}", f"SlurmdPidFile={tmp / 'slurmd.pid'}",
        f"SlurmdSpoolDir={tmp / 'spool'}", f"StateSaveLocation={tmp / 'state'}",
        f"SlurmctldLogFile={tmp / 'slurmctld.log'}", f"SlurmdLogFile={tmp / 'slurmd.log'}",
        "ReturnToService=1", "MpiDefault=none", "JobAcctGatherType=jobacct_gather/none",
        "KillWait=5", "JobRequeue=0", "OverTimeLimit=0", "InactiveLimit=0", "MinJobAge=600",
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=4000 State=UNKNOWN",
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP", ""]))
    (tmp / "spool").mkdir()
    (tmp / "state").mkdir()
    env = {**os.environ, "SLURM_CONF": str(conf)}
    subprocess.run(["/usr/sbin/slurmctld", "-f", str(conf)], check=True, env=env, capture_output=True)
    subprocess.run(["/usr/sbin/slurmd", "-f", str(conf)], check=True, env=env, capture_output=True)
    deadline = time.time() + 60
    state = ""
    while time.time() < deadline:
        state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, env=env).stdout.strip()
        if state == "idle":
            return {"env": env, "tmp": tmp, "host": host}
        time.sleep(0.5)
    stop_slurm(tmp)
    logs = "\n".join((tmp / n).read_text()[-1500:] for n in ("slurmctld.log", "slurmd.log") if (tmp / n).exists())
    pytest.fail(f"Slurm did not come up (sinfo: {state!r}):\n{logs}", pytrace=False)


def stop_slurm(tmp: Path) -> None:
    """Cancel this test cluster's jobs (their processes would outlive slurmd), then stop the daemons."""
    env = {**os.environ, "SLURM_CONF": str(tmp / "slurm.conf")}
    subprocess.run(["scancel", "--full", "--user", "root"], env=env, capture_output=True)
    deadline = time.time() + 30
    while time.time() < deadline and subprocess.run(["squeue", "-h"], env=env, capture_output=True,
                                                     text=True).stdout.strip():
        time.sleep(0.5)
    for name in ("slurmd.pid", "slurmctld.pid", "munged.pid"):
        _stop(tmp / name)
