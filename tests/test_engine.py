"""The engine on the real pretrained MiniLM: learning, events, reload, determinism, QLoRA, stop, failure."""
import json

import pytest
import torch

from ftkit.config import RunConfig
from ftkit.control import Control
from ftkit.engine.train import train
from ftkit.events import read_events
from ftkit.store import RunStore


def quick(**changes) -> RunConfig:
    base = {
        "task.name": "classification",
        "training.max_steps": 30,
        "training.batch_size": 16,
        "training.max_seq_length": 48,
        "training.learning_rate": 5e-3,
        "training.logging_steps": 2,
        "training.eval_steps": 0,
        "data.max_eval_samples": 64,
    }
    return RunConfig().update({**base, **changes})


def run(config, **kw):
    record = RunStore().create(config)
    return record, train(config, record.path, **kw)


def test_lora_learns_and_the_run_folder_is_a_complete_record():
    record, summary = run(quick())
    assert summary["status"] == "finished", summary["reason"]
    assert summary["loss_last"] < 0.6 * summary["loss_first"]
    assert summary["metrics"]["accuracy"] > 0.8
    assert 0 < summary["trainable_params"] < 0.01 * summary["total_params"]
    events = record.events()
    kinds = [e["type"] for e in events]
    assert kinds[0] == "status" and kinds[-1] == "ended"
    assert kinds.index("started") < kinds.index("step") < kinds.index("eval")
    steps = [e["step"] for e in events if e["type"] == "step"]
    assert steps == sorted(steps) and steps[-1] == 30
    assert all(e["rss_mb"] > 0 and e["tokens_per_s"] >= 0 for e in events if e["type"] == "step")
    assert json.loads((record.path / "summary.json").read_text()) == events[-1]["summary"]
    assert (record.path / "final" / "adapter_config.json").exists()
    assert record.status == "finished" and RunStore().get(record.id).summary["steps"] == 30


def test_reloaded_adapter_reproduces_the_final_eval():
    from transformers import Trainer, TrainingArguments

    from ftkit.data import load_rows
    from ftkit.engine.loading import load_trained
    from ftkit.tasks import TaskContext

    record, summary = run(quick(**{"training.max_steps": 12}))
    model, tokenizer, config = load_trained(record.path)
    train_rows, eval_rows = load_rows(config)
    data = config.task_spec.prepare(TaskContext(tokenizer, config.task_options, 48, train_rows, eval_rows))
    args = TrainingArguments(output_dir=str(record.path / "tmp"), per_device_eval_batch_size=16,
                             use_cpu=True, report_to="none")
    metrics = Trainer(model=model, args=args, eval_dataset=data.eval, data_collator=data.collator).evaluate()
    assert metrics["eval_loss"] == pytest.approx(summary["metrics"]["loss"], abs=1e-5)


def test_same_seed_gives_the_same_loss_curve():
    config = quick(**{"training.max_steps": 8, "training.logging_steps": 1})
    curves = []
    for _ in range(2):
        record, _ = run(config)
        curves.append([e["loss"] for e in record.events() if e["type"] == "step"])
    assert len(curves[0]) == 8
    assert curves[0] == pytest.approx(curves[1], abs=1e-6)


def test_qlora_quantizes_for_real_and_trains():
    import bitsandbytes as bnb

    from ftkit.engine.loading import load_model

    config = quick(**{"method.name": "qlora", "training.max_steps": 20})
    quantized = load_model(config, ["negative", "positive"])
    plain = load_model(config.set("method.name", "lora"), ["negative", "positive"])
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in quantized.modules())
    assert quantized.get_memory_footprint() < 0.6 * plain.get_memory_footprint()
    record, summary = run(config)
    assert summary["status"] == "finished", summary["reason"]
    assert summary["bits"] == 4
    assert summary["loss_last"] < summary["loss_first"]


def test_a_4bit_layer_still_passes_gradients_back_after_an_evaluation():
    """On CPUs with AVX512-BF16 bitsandbytes would switch a 4-bit layer that ran once under no_grad in eval
    mode to a kernel with no backward, for good: training after the first evaluation would send nothing back
    through the base (bitsandbytes itself warns only "may lead to silently incorrect behavior"). On other
    CPUs bitsandbytes never switches, and this holds either way."""
    import bitsandbytes as bnb

    from ftkit.engine.loading import load_model

    model = load_model(quick(**{"method.name": "qlora"}), ["negative", "positive"])
    layer = next(m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit))
    layer.eval()
    with torch.no_grad():
        layer(torch.randn(2, layer.in_features))
    assert not getattr(layer.weight.quant_state, "packing_format_for_cpu", False)
    layer.train()
    x = torch.randn(2, layer.in_features, requires_grad=True)
    layer(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_8bit_base_trains_lora():
    record, summary = run(quick(**{"quantization.bits": 8, "training.max_steps": 10}))
    assert summary["status"] == "finished", summary["reason"]
    assert summary["loss_last"] == summary["loss_last"]  # finite, not NaN


def test_stop_request_ends_the_run_with_a_checkpoint():
    control = Control()

    def stop_at_ten(event):
        if event["type"] == "step" and event["step"] >= 10:
            control.request("stop")

    config = quick(**{"training.max_steps": 200})
    record, summary = run(config, emit=stop_at_ten, control=control)
    assert summary["status"] == "stopped"
    assert 10 <= summary["steps"] < 200
    checkpoints = RunStore().get(record.id).checkpoints()
    assert checkpoints and checkpoints[-1].name == f"checkpoint-{summary['steps']}"


def test_a_failing_run_ends_as_failed_with_the_reason(tmp_path):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    record, summary = run(quick(**{"model.name_or_path": str(empty)}))
    assert summary["status"] == "failed"
    assert "model.name_or_path" in summary["reason"]
    events, _ = read_events(record.path / "events.jsonl")
    assert events[-1]["type"] == "ended" and events[-1]["status"] == "failed"


def test_the_warmup_ratio_reaches_the_scheduler_as_a_ratio_on_the_supported_transformers(tmp_path):
    """``warmup_ratio`` is passed as ``warmup_steps`` (a float < 1), which only Transformers 5 reads as a
    ratio: pyproject's floor must say so."""
    import re
    from pathlib import Path

    import transformers

    from ftkit.engine.train import training_arguments

    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    floor = re.search(r'"transformers>=(\d+)', pyproject).group(1)
    assert int(floor) >= 5 and int(transformers.__version__.split(".")[0]) >= int(floor)
    config = RunConfig.preset("demo").update({"training.warmup_ratio": 0.1})
    args = training_arguments(config, tmp_path, generate=False, has_eval=False)
    assert args.get_warmup_steps(200) == 20


def test_the_last_step_logs_one_eval_and_the_summary_keeps_the_best():
    record, summary = run(quick(**{"training.max_steps": 4, "training.eval_steps": 2}))
    evals = [e for e in read_events(record.path / "events.jsonl")[0] if e["type"] == "eval"]
    assert [e["step"] for e in evals] == [2, 4]  # the last step's evaluation once
    assert summary["best"] and summary["best"]["step"] in (2, 4)
    assert summary["run_peak_mb"] is not None and "measured_peak_mb" not in summary
