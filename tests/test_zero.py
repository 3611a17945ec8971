"""ZeRO presets: every preset renders a config Transformers resolves; 2-rank gloo runs on CPU learn under each."""
import json
import os
from pathlib import Path

import pytest

from ftkit.config import RunConfig
from ftkit.errors import ConfigError
from ftkit.zero import preset_for, presets, render

REPO = Path(__file__).resolve().parents[1]


def cfg(**changes) -> RunConfig:
    return RunConfig().update(changes)


def test_one_preset_per_stage_is_found_in_the_folder():
    assert sorted(p.stage for p in presets) == [0, 1, 2, 3]
    for preset in presets:
        assert preset.name == f"zero{preset.stage}" and preset.summary
        assert preset.deepspeed["zero_optimization"]["stage"] == preset.stage
        assert preset_for(preset.stage) is preset


@pytest.mark.parametrize("stage", [p.stage for p in presets])
def test_every_preset_renders_auto_values_and_leaves_train_batch_size_out(stage):
    ds = render(cfg(**{"distributed.zero_stage": stage}), cuda=False)
    assert ds["zero_optimization"]["stage"] == stage
    assert "train_batch_size" not in ds
    for key in ("train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping"):
        assert ds[key] == "auto"
    assert ds["bf16"] == {"enabled": "auto"} and ds["fp16"]["enabled"] == "auto"
    assert "offload_optimizer" not in ds["zero_optimization"] and "offload_param" not in ds["zero_optimization"]
    assert "optimizer" not in ds  # the Trainer's torch optimizer: no fused_adam build


def test_offload_on_cpu_keeps_the_torch_optimizer_and_on_gpu_uses_deepspeeds():
    config = cfg(**{"distributed.zero_stage": 3, "distributed.offload_optimizer": "cpu",
                    "distributed.offload_params": "cpu"})
    ds = render(config, cuda=False)
    zero = ds["zero_optimization"]
    assert zero["offload_optimizer"] == {"device": "cpu", "pin_memory": False}
    assert zero["offload_param"] == {"device": "cpu", "pin_memory": False}
    assert ds["zero_force_ds_cpu_optimizer"] is False and "optimizer" not in ds
    ds = render(config, cuda=True)
    assert ds["zero_optimization"]["offload_optimizer"]["pin_memory"] is True
    assert ds["optimizer"]["type"] == "AdamW" and ds["optimizer"]["params"]["lr"] == "auto"
    assert "zero_force_ds_cpu_optimizer" not in ds
    ds = render(config.set("training.optimizer", "sgd"), cuda=True)
    assert "optimizer" not in ds and ds["zero_force_ds_cpu_optimizer"] is False


def test_nvme_offload_writes_the_path_and_async_io_settings():
    ds = render(cfg(**{"distributed.zero_stage": 3, "distributed.offload_optimizer": "nvme",
                       "distributed.offload_params": "nvme", "distributed.nvme_path": "/nvme/ds"}), cuda=True)
    zero = ds["zero_optimization"]
    assert zero["offload_optimizer"]["device"] == "nvme" and zero["offload_optimizer"]["nvme_path"] == "/nvme/ds"
    assert zero["offload_param"] == {"device": "nvme", "nvme_path": "/nvme/ds", "pin_memory": True}
    assert "aio" in ds


def test_render_refuses_a_run_without_deepspeed():
    with pytest.raises(ConfigError, match="distributed.zero_stage"):
        render(cfg(), cuda=False)


def test_transformers_resolves_every_auto_it_owns():
    from transformers import TrainingArguments

    for preset in presets:
        ds = render(cfg(**{"distributed.zero_stage": preset.stage}), cuda=False)
        args = TrainingArguments(output_dir="unused", use_cpu=True, deepspeed=ds, per_device_train_batch_size=4,
                                 gradient_accumulation_steps=3, max_grad_norm=0.5, report_to="none")
        done = args.hf_deepspeed_config.config
        assert (done["train_micro_batch_size_per_gpu"], done["gradient_accumulation_steps"],
                done["gradient_clipping"]) == (4, 3, 0.5)
        assert done["bf16"]["enabled"] is False and done["fp16"]["enabled"] is False


# ---- 2 ranks on CPU (gloo) -----------------------------------------------------------------

@pytest.fixture
def ds_env(monkeypatch):
    # DeepSpeed's one JIT build (its shared-memory op) is cached in the repo's ignored .cache/
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", os.environ.get("TORCH_EXTENSIONS_DIR")
                       or str(REPO / ".cache" / "torch_extensions"))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


def two_ranks(stage, method="full", launcher="torchrun", **distributed) -> RunConfig:
    lr = 3e-4 if method == "full" else 3e-3
    changes = {
        "model.name_or_path": "builtin:tiny-llama",
        "task.name": "classification",
        "method.name": method,
        "data.max_train_samples": 16,
        "data.max_eval_samples": 8,
        "training.max_steps": 12,
        "training.batch_size": 4,
        "training.max_seq_length": 32,
        "training.learning_rate": lr,
        "training.logging_steps": 1,
        "training.eval_steps": 0,
        "distributed.launcher": launcher,
        "distributed.num_processes": 2,
        "distributed.zero_stage": stage,
    }
    changes.update({f"distributed.{k}": v for k, v in distributed.items()})
    return RunConfig().update(changes)


#: PEFT methods under ZeRO through torchrun. Full fine-tuning under every stage (0, 1, 2, 3 and 3 with
#: offload, through the DeepSpeed launcher) is notebooks/04_distributed_zero.ipynb, which tests/test_notebooks.py
#: runs: each stage learns ZeRO-0's loss curve to 1e-4, every rank reports its memory, the whole model is saved.
CASES = {
    "lora-zero2": dict(stage=2, method="lora"),
    "lora-zero3": dict(stage=3, method="lora"),
    "dora-zero2": dict(stage=2, method="dora", launcher="deepspeed"),
}


def shm_segments(run) -> list:
    """The run's segments of DeepSpeed's CPU all-reduce (deepspeed launcher, every rank on this machine)."""
    port = json.loads((run.path / "worker.json").read_text())["master_port"]
    from ftkit import shm

    return sorted(shm.SHM.glob(f"{shm.PREFIX}_{os.getuid()}_*_{port}_*"))


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_two_gloo_ranks_learn_and_report_each_ranks_memory(case, ds_env, figure):
    from ftkit.controller import Controller

    run = Controller().start(two_ranks(**CASES[case]))
    assert run.wait(300) == "finished", (run.summary or {}).get("reason")
    losses = [loss for _, loss in run.steps()]
    steps = [e for e in run.events if e["type"] == "step"]
    started = next(e for e in run.events if e["type"] == "started")
    assert started["world_size"] == 2 and [e["step"] for e in steps] == list(range(1, 13))
    first, last = sum(losses[:4]) / 4, sum(losses[-4:]) / 4
    assert last < 0.7 * first, losses
    ranks = steps[-1]["rank_rss_mb"]
    assert len(ranks) == 2 and all(r and r > 50 for r in ranks)
    summary = run.summary
    peaks = summary["rank_peak_rss_mb"]
    assert len(peaks) == 2 and all(p >= r for p, r in zip(peaks, ranks))
    assert shm_segments(run) == [], "DeepSpeed's all-reduce segments outlived the run"
    assert (run.path / "final" / "config.json").exists() or (run.path / "final" / "adapter_config.json").exists()
    figure(f"[{case}] loss {losses[0]:.3f} -> {losses[-1]:.3f} (mean of 4: {first:.3f} -> {last:.3f}); "
           f"peak RSS per rank {peaks} MB; train {summary['train_s']} s, wall {summary['wall_s']} s")


@pytest.mark.slow
def test_a_killed_rank_fails_the_run_and_every_printer_reads_it_back(ds_env, capsys):
    import signal
    import time

    from ftkit.cli import main
    from ftkit.controller import Controller

    run = Controller().start(two_ranks(stage=2, method="lora", launcher="deepspeed").update({"training.max_steps": 2000}))
    rank1 = run.path / "ranks" / "rank-1.json"
    deadline = time.time() + 240
    while not run.done and time.time() < deadline and len(run.steps()) < 2:
        time.sleep(0.1)
    pid = json.loads(rank1.read_text())["pid"]
    assert len(shm_segments(run)) == 2  # one per rank, mapped at start: DeepSpeed itself never unlinks them
    os.kill(pid, signal.SIGKILL)
    assert run.wait(240) == "failed"
    assert shm_segments(run) == [], "a killed run's shared memory was left in /dev/shm"
    reason = run.events[-1]["reason"]
    assert "rank 1" in reason and "SIGKILL" in reason, reason
    capsys.readouterr()
    assert main(["show", run.id]) == 0  # was: exit 2, "ftkit: trainable_pct"
    out = capsys.readouterr().out
    assert f"run {run.id}: failed (" in out and "rank 1" in out
    assert main(["runs"]) == 0 and "failed" in capsys.readouterr().out


def test_a_second_stage_3_preset_is_chosen_by_name(tmp_path):
    from _new_file import new_file

    source = '''
        from ftkit.zero._base import ZeroPreset
        from ftkit.zero.zero3 import SPECS as ZERO3

        base = ZERO3[0].deepspeed
        SPECS = [ZeroPreset(name="zero3_lean", stage=3, summary="ZeRO-3 with small live-parameter budgets.",
                            deepspeed={**base, "zero_optimization": {**base["zero_optimization"],
                                                                     "stage3_max_live_parameters": 1e6}})]
    '''
    with new_file("ftkit.zero", "zero3_lean", source, tmp_path / "zero"):
        assert [p.name for p in presets if p.stage == 3] == ["zero3", "zero3_lean"]
        lean = render(cfg(**{"distributed.zero_stage": 3, "distributed.zero_preset": "zero3_lean"}), cuda=False)
        assert lean["zero_optimization"]["stage3_max_live_parameters"] == 1e6
        plain = render(cfg(**{"distributed.zero_stage": 3}), cuda=False)  # the stage's own, not the newest
        assert plain["zero_optimization"]["stage3_max_live_parameters"] == 1e9
        with pytest.raises(ConfigError, match="distributed.zero_preset.*zero3_lean is a ZeRO-3 preset but "
                                              "distributed.zero_stage is 2"):
            render(cfg(**{"distributed.zero_stage": 2, "distributed.zero_preset": "zero3_lean"}), cuda=False)
    with pytest.raises(ConfigError, match="distributed.zero_preset.*unknown ZeRO preset 'zero3_lean'"):
        cfg(**{"distributed.zero_preset": "zero3_lean"})
