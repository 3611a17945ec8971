"""Launch commands are pure: (argv, env) from a config, checked against the exact expected lists."""
import pytest

from ftkit import launch
from ftkit.config import RunConfig
from ftkit.errors import ConfigError

PY = "/opt/py/bin/python"
RD = "/runs/r1"
WORKER = ["-m", "ftkit.worker", RD]


def cfg(**distributed) -> RunConfig:
    return RunConfig().update({f"distributed.{k}": v for k, v in distributed.items()})


def build(config, **kw):
    kw.setdefault("python", PY)
    kw.setdefault("port", 29611)
    return launch.command(config, RD, **kw)


def test_one_process_is_plain_python_without_distributed_env():
    argv, env = build(cfg(launcher="python"), cuda=True, base_env={"HOME": "/h"})
    assert argv == [PY, "-m", "ftkit.worker", RD]
    assert env == {"HOME": "/h", "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}


def test_deepspeed_with_one_process_is_python_with_a_one_rank_group():
    argv, env = build(cfg(zero_stage=2), cuda=False)
    assert argv == [PY, "-m", "ftkit.worker", RD]
    assert {k: env[k] for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "DS_ACCELERATOR")} == {
        "RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29611",
        "DS_ACCELERATOR": "cpu"}
    _, env = build(cfg(zero_stage=2, gpus=[3]), cuda=True)
    assert env["CUDA_VISIBLE_DEVICES"] == "3" and "DS_ACCELERATOR" not in env


def test_torchrun_on_chosen_gpus():
    argv, env = build(cfg(num_processes=4, gpus=[0, 2, 3, 5]), cuda=True)
    assert argv == [PY, "-m", "torch.distributed.run", "--nproc_per_node", "4", "--nnodes", "1", "--node_rank", "0",
                    "--master_addr", "127.0.0.1", "--master_port", "29611"] + WORKER
    assert env["CUDA_VISIBLE_DEVICES"] == "0,2,3,5"
    assert "DS_ACCELERATOR" not in env and "OMP_NUM_THREADS" not in env


def test_torchrun_on_several_machines_uses_the_configured_rendezvous():
    config = cfg(num_processes=8, num_nodes=2, node_rank=1, master_addr="10.0.0.1", master_port=29400, zero_stage=3,
                 launcher="torchrun")
    argv, env = build(config, cuda=True)
    assert argv == [PY, "-m", "torch.distributed.run", "--nproc_per_node", "8", "--nnodes", "2", "--node_rank", "1",
                    "--rdzv_backend", "c10d", "--rdzv_endpoint", "10.0.0.1:29400", "--rdzv_id", "r1",
                    "--rdzv_conf", "join_timeout=300"] + WORKER
    assert "CUDA_VISIBLE_DEVICES" not in env
    argv, _ = build(config.set("distributed.rendezvous_timeout", 60), cuda=True)
    assert argv[argv.index("--rdzv_conf") + 1] == "join_timeout=60"
    node0 = config.set("distributed.node_rank", 0)
    assert launch.join_commands(node0, RD) == ["ftkit join /runs/r1 --node-rank 1"]
    assert launch.join_commands(cfg(num_processes=2), RD) == []
    log = ["torch.distributed.elastic.rendezvous.api.RendezvousTimeoutError"]
    assert launch.rendezvous_timeout_reason(node0, RD, log) == (
        "waited 300 s for 1 of 2 nodes at 10.0.0.1:29400: start it with ftkit join /runs/r1 --node-rank 1")
    assert launch.rendezvous_timeout_reason(node0, RD, ["other error"]) is None
    with pytest.raises(ConfigError, match="distributed.node_rank"):
        config.set("distributed.node_rank", 2)
    with pytest.raises(ConfigError, match="distributed.rendezvous_timeout"):
        config.set("distributed.rendezvous_timeout", 1)


def test_deepspeed_launcher_all_gpus_chosen_gpus_and_a_hostfile(tmp_path):
    argv, _ = build(cfg(num_processes=4, zero_stage=2), cuda=True)
    assert argv == [PY, "-m", "deepspeed.launcher.runner", "--num_gpus", "4", "--master_addr", "127.0.0.1",
                    "--master_port", "29611", "--no_local_rank", "--module", "ftkit.worker", RD]

    argv, env = build(cfg(num_processes=2, gpus=[0, 2], zero_stage=3), cuda=True,
                      base_env={"CUDA_VISIBLE_DEVICES": "0,1,2,3"})
    assert argv == [PY, "-m", "deepspeed.launcher.runner", "--include", "localhost:0,2", "--master_addr", "127.0.0.1",
                    "--master_port", "29611", "--no_local_rank", "--module", "ftkit.worker", RD]
    assert "CUDA_VISIBLE_DEVICES" not in env  # --include chooses the GPUs

    hosts = "/cluster/hostfile"
    config = cfg(num_processes=8, num_nodes=2, hostfile=hosts, master_addr="10.0.0.1", master_port=29500, zero_stage=3)
    argv, _ = build(config, cuda=True)
    assert argv == [PY, "-m", "deepspeed.launcher.runner", "--hostfile", hosts, "--force_multi", "--num_nodes", "2",
                    "--num_gpus", "8",
                    "--master_addr", "10.0.0.1", "--master_port", "29500", "--no_local_rank", "--module",
                    "ftkit.worker", RD]


def test_on_cpu_deepspeed_gets_its_cpu_accelerator_and_ranks_share_the_cores():
    argv, env = build(cfg(num_processes=2, zero_stage=1), cuda=False, cpus=8, base_env={"PATH": "/bin"})
    assert argv[:5] == [PY, "-m", "deepspeed.launcher.runner", "--num_gpus", "2"]
    assert env["DS_ACCELERATOR"] == "cpu" and env["OMP_NUM_THREADS"] == "4"
    assert env["PATH"] == "/opt/py/bin:/bin"  # the interpreter's tools (the ninja of DeepSpeed's JIT build) first
    _, again = build(cfg(num_processes=2, zero_stage=1), cuda=False, base_env={"PATH": "/opt/py/bin:/bin"})
    assert again["PATH"] == "/opt/py/bin:/bin"
    _, env = build(cfg(num_processes=2, zero_stage=1), cuda=False, cpus=8, base_env={"OMP_NUM_THREADS": "1"})
    assert env["OMP_NUM_THREADS"] == "1"  # the user's choice wins
    _, env = build(cfg(num_processes=2, zero_stage=1), cuda=True, base_env={"DS_ACCELERATOR": "cpu"})
    assert "DS_ACCELERATOR" not in env


def test_the_builder_is_pure():
    base = {"A": "1"}
    config = cfg(num_processes=2, zero_stage=2)
    first = build(config, cuda=False, base_env=base, cpus=2)
    assert build(config, cuda=False, base_env=base, cpus=2) == first
    assert base == {"A": "1"}
    assert cfg(master_port=31000).distributed.master_port == 31000
    argv, _ = build(cfg(num_processes=2, master_port=31000), cuda=False)
    assert argv[argv.index("--master_port") + 1] == "31000"  # a configured port beats the picked one
    with pytest.raises(ValueError, match="thread"):
        build(cfg(), cuda=False)


@pytest.mark.parametrize("changes, path", [
    ({"launcher": "python", "num_processes": 2}, "distributed.launcher"),
    ({"num_nodes": 2, "num_processes": 2}, "distributed.master_port"),
    ({"zero_stage": 2, "num_nodes": 2, "master_port": 29500}, "distributed.hostfile"),
    ({"zero_stage": 2, "num_nodes": 2, "node_rank": 1, "master_port": 29500, "hostfile": "h"}, "distributed.node_rank"),
    ({"zero_stage": 2, "num_nodes": 2, "num_processes": 2, "gpus": [0, 1], "master_port": 29500, "hostfile": "h"},
     "distributed.gpus"),
])
def test_launches_that_cannot_work_are_refused_naming_the_field(changes, path):
    with pytest.raises(ConfigError) as err:
        cfg(**changes)
    assert path in [p for p, _ in err.value.problems]


def test_machine_checks_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match="distributed.hostfile"):
        launch.check(cfg(num_processes=2, zero_stage=2, hostfile=str(tmp_path / "missing")), cuda=True)
    with pytest.raises(ConfigError, match="NVMe offload runs only on GPUs"):
        launch.check(cfg(zero_stage=2, offload_optimizer="nvme", nvme_path=str(tmp_path)), cuda=False)
    with pytest.raises(ConfigError, match="distributed.gpus: no CUDA GPU"):
        launch.check(cfg(num_processes=2, gpus=[0, 1]), cuda=False)
    launch.check(cfg(num_processes=2, zero_stage=3, offload_optimizer="cpu", offload_params="cpu"), cuda=False)


def test_resume_from_resolves_a_checkpoint_folder_or_a_run_id(tmp_path):
    run = tmp_path / "20260101-000000-lora-classification-abcd"
    for step in (5, 10):
        (run / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True)
        (run / "checkpoints" / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    (run / "checkpoints" / "checkpoint-15").mkdir()  # half written: no trainer_state.json
    (run / "config.json").write_text("{}")
    latest = run / "checkpoints" / "checkpoint-10"
    assert launch.resolve_checkpoint(run.name, tmp_path) == latest.resolve()
    assert launch.resolve_checkpoint(str(run), tmp_path / "elsewhere") == latest.resolve()
    first = run / "checkpoints" / "checkpoint-5"
    assert launch.resolve_checkpoint(str(first), tmp_path) == first.resolve()
    with pytest.raises(ConfigError, match="resume_from"):
        launch.resolve_checkpoint("no-such-run", tmp_path)
    (run / "checkpoints" / "checkpoint-15" / "trainer_state.json").write_text('{"global_st')  # killed mid-write
    assert launch.resolve_checkpoint(run.name, tmp_path) == latest.resolve()
    with pytest.raises(ConfigError, match="resume_from: .*cut short"):
        launch.resolve_checkpoint(str(run / "checkpoints" / "checkpoint-15"), tmp_path)


def test_the_slurm_batch_script_is_pure_and_runs_one_torchrun_per_node(monkeypatch):
    from ftkit import slurm

    config = cfg(launcher="slurm", num_processes=2, master_port=29400, zero_stage=2).update({
        "distributed.slurm.nodes": 2, "distributed.slurm.partition": "gpu", "distributed.slurm.time": "00:10:00",
        "distributed.slurm.account": "lab", "distributed.slurm.gpus_per_node": 4,
        "distributed.slurm.extra": ["--constraint=a100"]})
    text = slurm.batch_script(config, RD, python=PY)
    assert text == slurm.batch_script(config, RD, python=PY)
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash"
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=1", "#SBATCH --time=00:10:00",
                 "#SBATCH --partition=gpu", "#SBATCH --account=lab", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --constraint=a100", f"#SBATCH --output={RD}/logs/worker.log",
                 'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)'):
        assert line in lines, line
    (srun,) = [line for line in lines if line.startswith("srun ")]
    assert srun == ('srun --nodes=2 --ntasks=2 --ntasks-per-node=1 --kill-on-bad-exit=1 '
                    f'{PY} -m torch.distributed.run --nproc_per_node 4 --nnodes 2 --rdzv_backend c10d '
                    '--rdzv_endpoint "$MASTER_ADDR":29400 --rdzv_id r1 --rdzv_conf join_timeout=300 '
                    f'-m ftkit.worker {RD}')
    assert "DS_ACCELERATOR" not in text
    cpu = slurm.batch_script(config.set("distributed.slurm.gpus_per_node", 0), RD, python=PY)
    assert "export DS_ACCELERATOR=cpu" in cpu and "--nproc_per_node 2" in cpu
    for bad in ("10 minutes", "1:2:3:4"):
        with pytest.raises(ConfigError, match="distributed.slurm.time"):
            config.set("distributed.slurm.time", bad)
    with pytest.raises(ConfigError, match="distributed.slurm.nodes"):
        config.set("distributed.slurm.nodes", 0)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ConfigError, match="distributed.launcher: slurm needs Slurm's sbatch"):
        launch.check(config, cuda=False)


def test_the_hostfiles_machines_get_the_settings_and_an_unreachable_host_is_named():
    text = launch.deepspeed_env_file({"DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1", "HOME": "/root",
                                      "FTKIT_CACHE": "/c", "TORCH_EXTENSIONS_DIR": "/t"})
    assert text == "DS_ACCELERATOR=cpu\nFTKIT_CACHE=/c\nOMP_NUM_THREADS=1\nTORCH_EXTENSIONS_DIR=/t\n"
    config = cfg(num_processes=2, zero_stage=2, hostfile="/h/hosts")
    log = ["RuntimeError: Using hostfile at /h/hosts but host=gpu7 was not reachable via ssh. If you are ..."]
    assert launch.unreachable_host_reason(config, log).startswith(
        "host gpu7 from distributed.hostfile /h/hosts cannot be reached over ssh")
    assert launch.unreachable_host_reason(config, ["fine"]) is None
