"""How a run's worker process is started: a pure ``(argv, env)`` builder and its inputs.

``command(config, run_dir, ...)`` decides everything from its arguments and
touches nothing: plain ``python -m ftkit.worker RUN_DIR`` for one process,
``torchrun`` for several (one machine or many), or the ``deepspeed`` launcher
for ZeRO runs. The launchers are invoked as ``python -m torch.distributed.run``
(what the ``torchrun`` script runs) and ``python -m deepspeed.launcher.runner``
(what the ``deepspeed`` script runs) so every process uses the same
interpreter as the notebook kernel, whatever ``PATH`` says; that interpreter's
folder also comes first on the workers' ``PATH``, for the tools installed beside it.

The impure parts (is there a GPU, which port is free, does a checkpoint
exist) are small separate functions the controller calls first.
"""
from __future__ import annotations

import glob
import importlib.util
import os
import socket
import sys
from pathlib import Path
from typing import Mapping, NamedTuple, Optional

from .errors import ConfigError

WORKER_MODULE = "ftkit.worker"


def tools_first(env, python: str = sys.executable):
    """Put ``python``'s folder first on ``env["PATH"]`` (a dict, or ``os.environ``), if it has a PATH.

    DeepSpeed's JIT build of its CPU op runs whichever ``ninja`` PATH finds: a
    kernel started from an environment it never activated finds none, or
    another version whose log makes the next one rebuild everything (~40 s).
    The workers, their launchers and in-kernel runs all set this.
    """
    tools = os.path.dirname(python)
    if env.get("PATH") is not None and env["PATH"].split(os.pathsep)[0] != tools:
        env["PATH"] = os.pathsep.join([tools, env["PATH"]])
    return env


class Launch(NamedTuple):
    argv: list[str]
    env: dict[str, str]


def processes(config) -> int:
    """Processes per machine that the run starts."""
    if config.launcher == "slurm":
        return config.distributed.slurm.gpus_per_node or config.distributed.num_processes
    return 1 if config.launcher in ("thread", "python") else config.distributed.num_processes


def world_size(config) -> int:
    d = config.distributed
    return processes(config) * (d.slurm.nodes if config.launcher == "slurm" else d.num_nodes)


def command(config, run_dir, *, python: Optional[str] = None, cuda: bool = False,
            port: Optional[int] = None, cpus: Optional[int] = None,
            base_env: Optional[Mapping[str, str]] = None) -> Launch:
    """The command line and environment that start ``config``'s worker(s) for ``run_dir``.

    ``cuda``: the machine has CUDA GPUs (else DeepSpeed runs on its CPU
    accelerator with the gloo backend). ``port``: the master port to use when
    the config leaves it empty. ``cpus``: cores to share between ranks on CPU.
    ``base_env``: the environment to start from (the result is a new dict).
    """
    d = config.distributed
    launcher = config.launcher
    if launcher == "thread":
        raise ValueError("a thread run starts in the kernel, not as a command")
    python = python or sys.executable
    run_dir = str(run_dir)
    master_port = d.master_port or port or 29500
    nproc = processes(config)
    env = dict(base_env or {})
    env["PYTHONUNBUFFERED"] = "1"
    tools_first(env, python)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not cuda:
        env["DS_ACCELERATOR"] = "cpu"
        if nproc > 1 and cpus and "OMP_NUM_THREADS" not in env:
            env["OMP_NUM_THREADS"] = str(max(1, cpus // nproc))
    else:
        env.pop("DS_ACCELERATOR", None)
    gpu_list = ",".join(str(g) for g in d.gpus) if d.gpus else None
    worker = ["-m", WORKER_MODULE, run_dir]

    if launcher == "slurm":  # submits the batch script and follows the job (ftkit.slurm)
        return Launch([python, "-m", "ftkit.slurm", run_dir], env)

    single = nproc == 1 and d.num_nodes == 1
    if launcher == "python" or (launcher == "deepspeed" and single and not d.hostfile):
        # one process; DeepSpeed still wants a (one-rank) process group
        if d.zero_stage is not None:
            env.update(RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1",
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(master_port))
        if gpu_list and cuda:
            env["CUDA_VISIBLE_DEVICES"] = gpu_list
        return Launch([python] + worker, env)

    if launcher == "torchrun":
        argv = [python, "-m", "torch.distributed.run",
                "--nproc_per_node", str(nproc),
                "--nnodes", str(d.num_nodes),
                "--node_rank", str(d.node_rank)]
        if d.num_nodes > 1:
            # c10d rendezvous on node 0: a run-specific id, and a bounded wait for the other machines
            argv += ["--rdzv_backend", "c10d", "--rdzv_endpoint", f"{d.master_addr}:{master_port}",
                     "--rdzv_id", rendezvous_id(run_dir), "--rdzv_conf", f"join_timeout={d.rendezvous_timeout}"]
        else:
            argv += ["--master_addr", "127.0.0.1", "--master_port", str(master_port)]
        if gpu_list and cuda:
            env["CUDA_VISIBLE_DEVICES"] = gpu_list
        return Launch(argv + worker, env)

    if launcher == "deepspeed":
        argv = [python, "-m", "deepspeed.launcher.runner"]
        if d.hostfile:
            # the hostfile's machines over pdsh + ssh, even when it names one
            argv += ["--hostfile", d.hostfile, "--force_multi"]
        if d.num_nodes > 1:
            argv += ["--num_nodes", str(d.num_nodes)]
        if gpu_list and cuda:
            argv += ["--include", f"localhost:{gpu_list}"]
            env.pop("CUDA_VISIBLE_DEVICES", None)  # --include chooses; the launcher would warn and ignore it
        else:
            argv += ["--num_gpus", str(nproc)]
        argv += ["--master_addr", d.master_addr if d.num_nodes > 1 else "127.0.0.1",
                 "--master_port", str(master_port),
                 "--no_local_rank", "--module", WORKER_MODULE, run_dir]
        return Launch(argv, env)

    raise ValueError(f"unknown launcher {launcher!r}")


#: what the deepspeed launcher's remote ranks need from this environment (it exports only PYTHON* itself)
REMOTE_ENV = ("DS_ACCELERATOR", "OMP_NUM_THREADS", "TORCH_EXTENSIONS_DIR", "TOKENIZERS_PARALLELISM",
              "CUDA_VISIBLE_DEVICES", "HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
REMOTE_PREFIXES = ("FTKIT_",)


def deepspeed_env_file(env: Mapping[str, str]) -> str:
    """The ``.deepspeed_env`` text (KEY=VALUE lines) that carries ``env``'s settings to the hostfile's machines."""
    keys = sorted(k for k in env if k in REMOTE_ENV or k.startswith(REMOTE_PREFIXES))
    return "".join(f"{k}={env[k]}\n" for k in keys if "\n" not in env[k])


def unreachable_host_reason(config, lines: list[str]) -> Optional[str]:
    """The message for a hostfile machine the deepspeed launcher could not reach over ssh, from its log."""
    import re

    found = re.findall(r"host=(\S+) was not reachable via ssh", "\n".join(lines))
    if not found:
        return None
    return (f"host {found[-1]} from distributed.hostfile {config.distributed.hostfile} cannot be reached over "
            f"ssh without a password (the deepspeed launcher checks it with: ssh {found[-1]} hostname): "
            "set up key-based ssh to it, or remove it from the hostfile")


def rendezvous_id(run_dir) -> str:
    """The c10d rendezvous id of a run: its folder's name (a run id), so two runs never meet by mistake."""
    return Path(str(run_dir)).name


def join_command(config, run_dir, node_rank: int, runs_dir: Optional[str] = None) -> str:
    """The command that joins machine ``node_rank`` to a multi-node torchrun run (pasted on that machine)."""
    import shlex

    run_dir = Path(str(run_dir))
    parts = ["ftkit", "join", run_dir.name if runs_dir else str(run_dir), "--node-rank", str(node_rank)]
    if runs_dir:
        parts += ["--runs-dir", str(runs_dir)]
    return " ".join(shlex.quote(p) for p in parts)


def join_commands(config, run_dir) -> list[str]:
    """One pasteable command per other machine of a multi-node torchrun run (none for other runs)."""
    d = config.distributed
    if config.launcher != "torchrun" or d.num_nodes < 2:
        return []
    return [join_command(config, run_dir, rank) for rank in range(d.num_nodes) if rank != d.node_rank]


def rendezvous_timeout_reason(config, run_dir, lines: list[str]) -> Optional[str]:
    """The message for a rendezvous that timed out (a node never arrived), from the launcher's log."""
    d = config.distributed
    text = "\n".join(lines)
    if config.launcher != "torchrun" or d.num_nodes < 2 or "RendezvousTimeoutError" not in text:
        return None
    missing = [rank for rank in range(d.num_nodes) if rank != d.node_rank]
    starts = "; ".join(join_command(config, run_dir, rank) for rank in missing)
    return (f"waited {d.rendezvous_timeout} s for {len(missing)} of {d.num_nodes} nodes at "
            f"{d.master_addr}:{d.master_port}: start {'it' if len(missing) == 1 else 'them'} with {starts}")


# ---- the impure inputs --------------------------------------------------------------


def has_cuda() -> bool:
    """Whether CUDA GPUs are visible, without importing torch."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    return bool(glob.glob("/dev/nvidia[0-9]*")) or os.path.exists("/proc/driver/nvidia/version")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resolve_checkpoint(resume_from: str, runs_root: Path) -> Path:
    """The checkpoint folder ``resume_from`` names: a folder, or a run id (its latest checkpoint)."""
    from .store import RunStore, checkpoint_complete

    path = Path(resume_from).expanduser()
    if path.is_dir() and (path / "trainer_state.json").exists():
        if not checkpoint_complete(path):
            raise ConfigError([("resume_from", f"{resume_from!r} is a checkpoint cut short while it was written "
                                               "(its trainer_state.json does not parse): resume from an earlier "
                                               "checkpoint, or give the run id to pick its last complete one")])
        return path.resolve()
    if path.is_dir() and (path / "checkpoints").is_dir():  # a run folder given by path
        runs_root, resume_from = path.parent, path.name

    try:
        record = RunStore(runs_root).get(Path(resume_from).name)
    except KeyError:
        record = None
    found = record.checkpoints() if record else []
    if not found:
        raise ConfigError([(
            "resume_from",
            f"{resume_from!r} is neither a checkpoint folder nor a run with checkpoints in {str(runs_root)!r}",
        )])
    return found[-1].resolve()


def check(config, cuda: bool) -> None:
    """What the config cannot know: launchers installed, files present. Raises ConfigError."""
    from . import slurm

    slurm.check(config)
    d = config.distributed
    problems = []
    if d.zero_stage is not None and importlib.util.find_spec("deepspeed") is None:
        problems.append(("distributed.zero_stage", "DeepSpeed is not installed (pip install 'ftkit[deepspeed]')"))
    if d.hostfile and not Path(d.hostfile).expanduser().is_file():
        problems.append(("distributed.hostfile", f"{d.hostfile!r} does not exist"))
    if d.nvme_path and "nvme" in (d.offload_optimizer, d.offload_params) and not Path(d.nvme_path).expanduser().is_dir():
        problems.append(("distributed.nvme_path", f"{d.nvme_path!r} is not a folder"))
    if "nvme" in (d.offload_optimizer, d.offload_params) and not cuda:
        problems.append(("distributed.offload_optimizer",
                         "NVMe offload runs only on GPUs (DeepSpeed's async I/O); use cpu offload here"))
    if d.gpus and not cuda:
        problems.append(("distributed.gpus", "no CUDA GPU is visible on this machine; leave gpus empty to run on CPU"))
    if problems:
        raise ConfigError(problems)
