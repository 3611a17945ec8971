"""A Slurm batch script as a pure function of the config, like ``launch.command``.

``python -m ftkit.slurm RUN_DIR`` (what ``launch.command`` starts for the
launcher ``slurm``) writes the script, submits it, records the job id in
``RUN_DIR/slurm.json`` and follows the job; ``--attach`` follows the job
already recorded there (a fresh controller whose follower is gone). It follows with ``scontrol show job`` until
it ends, so the controller tails it like any worker; SIGTERM (Stop's last
resort, Kill) cancels the job, and a job Slurm ends early (time limit,
preemption, node failure) closes the run as ``failed`` with Slurm's reason.

``batch_script(config, run_dir)`` returns the text of the ``sbatch`` script:
one ``srun`` task per allocated machine, each running torchrun with a c10d
rendezvous on the allocation's first host (``scontrol show hostnames``), so
every machine's ranks meet whatever nodes Slurm hands out. ``check`` says
why the launcher cannot be used on this machine.
"""
from __future__ import annotations

import shlex
import shutil
import sys
from pathlib import Path
from typing import Optional

from .errors import ConfigError
from .launch import rendezvous_id

SCRIPT_NAME = "slurm.sbatch"


def batch_script(config, run_dir, *, python: Optional[str] = None, port: int = 29500) -> str:
    """The batch script that trains ``config`` in ``run_dir`` on a Slurm allocation."""
    d, s = config.distributed, config.distributed.slurm
    python = python or sys.executable
    run_dir = str(run_dir)
    nproc = s.gpus_per_node or d.num_processes
    lines = ["#!/bin/bash",
             f"#SBATCH --job-name=ftkit-{rendezvous_id(run_dir)}",
             f"#SBATCH --nodes={s.nodes}",
             "#SBATCH --ntasks-per-node=1",
             f"#SBATCH --time={s.time}",
             f"#SBATCH --output={run_dir}/logs/worker.log",
             "#SBATCH --open-mode=append",
             f"#SBATCH --chdir={run_dir}"]
    if s.partition:
        lines.append(f"#SBATCH --partition={s.partition}")
    if s.account:
        lines.append(f"#SBATCH --account={s.account}")
    if s.gpus_per_node:
        lines.append(f"#SBATCH --gpus-per-node={s.gpus_per_node}")
    lines += [f"#SBATCH {extra}" for extra in s.extra]
    port = d.master_port or port
    torchrun = [python, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--nnodes", str(s.nodes),
                "--rdzv_backend", "c10d", "--rdzv_endpoint", "$MASTER_ADDR:" + str(port),
                "--rdzv_id", rendezvous_id(run_dir), "--rdzv_conf", f"join_timeout={d.rendezvous_timeout}",
                "-m", "ftkit.worker", run_dir]
    quoted = " ".join(a if a.startswith("$") else shlex.quote(a) for a in torchrun)
    lines += ["set -euo pipefail",
              "export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false",
              'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
              "export MASTER_ADDR",
              "",
              f'srun --nodes={s.nodes} --ntasks={s.nodes} --ntasks-per-node=1 --kill-on-bad-exit=1 ' + quoted.replace(
                  "$MASTER_ADDR", '"$MASTER_ADDR"'),
              ""]
    if not s.gpus_per_node:
        lines.insert(lines.index("set -euo pipefail") + 1, "export DS_ACCELERATOR=cpu")
    return "\n".join(lines)


def write_script(config, run_dir, **kw) -> Path:
    path = Path(run_dir) / SCRIPT_NAME
    path.write_text(batch_script(config, run_dir, **kw))
    return path


def check(config) -> None:
    """The launcher slurm needs Slurm's client commands on this machine; raises ConfigError naming the field."""
    if config.launcher != "slurm":
        return
    missing = [tool for tool in ("sbatch", "squeue", "scancel", "scontrol") if shutil.which(tool) is None]
    if missing:
        raise ConfigError([("distributed.launcher",
                            f"slurm needs Slurm's {', '.join(missing)} on this machine's PATH (none found): run "
                            "from a Slurm login node, or use launcher torchrun")])


# ---- talking to Slurm (impure, small) --------------------------------------------------------

FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "PREEMPTED", "NODE_FAIL", "OUT_OF_MEMORY",
                "BOOT_FAIL", "DEADLINE"}


def submit(script, env=None) -> str:
    """``sbatch --parsable SCRIPT``: the job id."""
    import subprocess

    out = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(f"sbatch refused {script}: {out.stderr.strip()}")
    return out.stdout.strip().split(";")[0]


def parse_job(text: str) -> dict:
    """``scontrol show job`` output as a dict of its ``Key=Value`` fields."""
    fields = {}
    for token in text.split():
        key, sep, value = token.partition("=")
        if sep and key not in fields:
            fields[key] = value
    return fields


def job(job_id: str, env=None) -> dict:
    """The job's fields from ``scontrol show job`` ({} once Slurm has forgotten it; accounting may be off)."""
    import subprocess

    try:  # scontrol retries an unreachable slurmctld for minutes
        out = subprocess.run(["scontrol", "show", "job", str(job_id)], capture_output=True, text=True, env=env,
                             timeout=30)
    except subprocess.TimeoutExpired:
        return {}
    return parse_job(out.stdout) if out.returncode == 0 else {}


def cancel(job_id: str, env=None) -> None:
    import subprocess

    subprocess.run(["scancel", str(job_id)], capture_output=True, env=env)


def node_reasons(node_list: str, env=None) -> list:
    """What the admin or Slurm wrote as the reason of each node of ``node_list`` that has one."""
    import subprocess

    try:
        out = subprocess.run(["scontrol", "show", "node", node_list], capture_output=True, text=True, env=env,
                             timeout=30).stdout
    except (subprocess.TimeoutExpired, OSError):
        return []
    reasons = []
    for block in out.split("NodeName=")[1:]:
        name = block.split()[0]
        why = block.split("Reason=", 1)[1].split(" [", 1)[0].strip() if "Reason=" in block else ""
        if why and why != "(null)":
            reasons.append(f"{name}: {why}")
    return reasons


def end_reason(fields: dict) -> Optional[str]:
    """Why Slurm ended a job that did not complete, in words (None while it runs or when it completed)."""
    state, job_id = fields.get("JobState"), fields.get("JobId")
    if state not in FINAL_STATES or state == "COMPLETED":
        return None
    why = {"TIMEOUT": f"it ran past its time limit ({fields.get('TimeLimit')}, distributed.slurm.time)",
           "PREEMPTED": "a job of higher priority preempted it", "NODE_FAIL": "one of its nodes failed",
           "CANCELLED": "it was cancelled (scancel)", "OUT_OF_MEMORY": "it ran out of its memory allocation",
           }.get(state, f"exit code {fields.get('ExitCode')}")
    if state == "NODE_FAIL" and fields.get("NodeList"):
        why += "".join(f" ({node})" for node in node_reasons(fields["NodeList"]))
    reason = fields.get("Reason")
    return f"Slurm ended job {job_id} as {state}: {why}" + (f" (Slurm's reason: {reason})"
                                                          if reason and reason != "None" else "")


def recorded_job(run_dir) -> Optional[str]:
    """The job id in ``RUN_DIR/slurm.json``, if the run was submitted."""
    import json

    try:
        return str(json.loads((Path(run_dir) / "slurm.json").read_text())["job_id"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def active_job(run_dir) -> Optional[str]:
    """The run's job id while Slurm still holds the job unfinished (pending, running, completing)."""
    job_id = recorded_job(run_dir)
    if job_id is None or shutil.which("scontrol") is None:
        return None
    state = job(job_id).get("JobState")
    return job_id if state and state not in FINAL_STATES else None


def follow(run_dir, poll_s: float = 1.0, attach: bool = False) -> int:
    """Submit ``run_dir``'s job (or, with ``attach``, take the recorded one) and follow it to its end."""
    import signal
    import time

    from .config import RunConfig
    from .events import read_events
    from .records import close, write_json

    run_dir = Path(run_dir).resolve()
    config = RunConfig.from_json(run_dir / "config.json")
    (run_dir / "logs").mkdir(exist_ok=True)
    job_id = recorded_job(run_dir) if attach else None
    if job_id is None:
        job_id = submit(write_script(config, run_dir))
        write_json(run_dir / "slurm.json", {"job_id": job_id, "submitted": time.time()})
        print(f"ftkit: submitted Slurm job {job_id}", flush=True)
    else:
        print(f"ftkit: following Slurm job {job_id} again", flush=True)
    cancelled = []

    def on_term(signum, frame):
        cancelled.append(signum)
        cancel(job_id)

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    fields: dict = {}
    while True:
        now = job(job_id)
        if not now and fields:  # Slurm forgot it (MinJobAge): the last state seen stands
            break
        fields = now or fields
        if fields.get("JobState") in FINAL_STATES:
            break
        time.sleep(poll_s)
    events = read_events(run_dir / "events.jsonl")[0]
    ended = bool(events) and events[-1]["type"] == "ended"
    if not ended and not cancelled:
        reason = end_reason(fields) or f"Slurm job {job_id} ended ({fields.get('JobState')}) without a final event"
        close(run_dir, "failed", reason, config=config)
        print(f"ftkit: {reason}", flush=True)
    return 0 if ended or cancelled else 1


if __name__ == "__main__":
    sys.exit(follow(sys.argv[1], attach="--attach" in sys.argv[2:]))
