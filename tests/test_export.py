"""Exporting runs: adapter files that reload exactly, merged weights equal to the adapter model for every
mergeable method, refusals for the rest, QLoRA merged onto its dequantized base, ONNX parity per head,
and the ``ftkit export`` command."""
from __future__ import annotations

import json

import pytest

from ftkit.config import RunConfig
from ftkit.errors import ConfigError
from ftkit.methods import methods
from ftkit.store import RunStore

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # the CI machine has 2 cores; one thread per process avoids oversubscription

TOLERANCE = 1e-4
#: the trained adapter must move the logits far more than the tolerance, or the merge check proves nothing
MIN_EFFECT = 100 * TOLERANCE
LEARNING_RATE = {"adapter": 3e-2, "prompt": 3e-2, "full": 1e-3}
QUICK = {"training.max_steps": 2, "training.max_seq_length": 32, "data.max_train_samples": 64,
         "data.max_eval_samples": 8}


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory, _model_cache):
    """One runs folder for the module's shared runs, under the same offline settings as every test."""
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {"FTKIT_CACHE": _model_cache, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                            "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}.items():
            mp.setenv(name, value)
        yield tmp_path_factory.mktemp("runs")


def quick_config(task: str, method: str, runs_dir, **changes) -> RunConfig:
    return RunConfig().update({"task.name": task, "method.name": method, "runs_dir": str(runs_dir),
                               **QUICK, **changes})


def trained_run(config: RunConfig, steps: int = 2):
    """A run folder as the engine leaves it (config, final/ adapter and tokenizer), trained for a few steps
    on one batch of the task's own data with a large learning rate, so the adapter is far from its start.

    Returns the record and the trained model's outputs on the export's sample inputs.
    """
    from ftkit.engine.build import build, quiet
    from ftkit.export import outputs, sample_inputs
    from ftkit.tasks import TaskContext

    quiet()
    record = RunStore(config.runs_dir).create(config)
    built = build(config)
    model, kind = built.model, config.task_spec.model_kind
    rows = built.train_rows[:8]
    data = config.task_spec.prepare(TaskContext(built.tokenizer, config.task_options, 32, rows, rows,
                                                model_config=model.config))
    batch = data.collator([data.train[i] for i in range(len(data.train))])
    samples = sample_inputs(config, built.tokenizer, model)
    before = outputs(model, samples.check, kind)
    torch.manual_seed(0)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=LEARNING_RATE[config.method_spec.kind], weight_decay=0.0)
    model.train()
    for step in range(steps):
        model(**batch).loss.backward()
        opt.step()
        if built.context.on_step is not None:
            built.context.on_step(model, step)
        opt.zero_grad()
    model.eval()
    after = outputs(model, samples.check, kind)
    model.save_pretrained(str(record.path / "final"))
    built.tokenizer.save_pretrained(str(record.path / "final"))
    return record, before, after, samples


def diff(a: dict, b: dict, samples) -> float:
    from ftkit.export import max_abs_diff

    return max_abs_diff(a, b, samples.mask)


# ---- adapter ------------------------------------------------------------------


@pytest.fixture(scope="module")
def cls_run(runs_dir):
    """LoRA on the real MiniLM classifying reviews, trained by the engine itself."""
    from ftkit.engine.train import train

    config = quick_config("classification", "lora", runs_dir, **{
        "training.max_steps": 3, "training.learning_rate": 5e-3, "training.eval_steps": 0})
    record = RunStore(runs_dir).create(config)
    summary = train(config, record.path)
    assert summary["status"] == "finished", summary["reason"]
    return record


def test_adapter_export_reloads_with_identical_logits(cls_run, tmp_path):
    from peft import PeftModel

    from ftkit.controller import Controller
    from ftkit.engine.loading import load_model, load_trained
    from ftkit.export import outputs, sample_inputs

    out = tmp_path / "adapter"
    result = Controller(runs_dir=str(cls_run.path.parent)).get(cls_run.id).export("adapter", out)
    assert result.out == out and result.format == "adapter"
    for name in ("adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "ftkit_config.yaml"):
        assert name in result.files and (out / name).is_file()
    assert RunConfig.from_yaml(out / "ftkit_config.yaml") == cls_run.config
    assert json.loads((out / "export.json").read_text())["checks"][0]["passed"] is True

    trained, tokenizer, config = load_trained(cls_run.path)
    base = load_model(config, [trained.config.id2label[i] for i in range(2)])
    reloaded = PeftModel.from_pretrained(base, str(out)).eval()
    samples = sample_inputs(config, tokenizer, trained)
    assert diff(outputs(reloaded, samples.check, "seq_cls"), outputs(trained, samples.check, "seq_cls"),
                samples) == 0.0
    assert result.parity.max_abs_diff == 0.0


def test_a_prompt_method_exports_its_adapter_but_refuses_to_merge(runs_dir):
    from ftkit.export import export

    record, before, after, samples = trained_run(quick_config("domain", "prompt_tuning", runs_dir))
    assert diff(before, after, samples) > MIN_EFFECT
    result = export(record.path, "adapter")
    assert result.out == record.path / "export" / "adapter" and result.parity.passed
    assert result.parity.max_abs_diff <= TOLERANCE
    for format in ("merged", "onnx"):
        with pytest.raises(ConfigError, match=r"Prompt tuning \(prompt_tuning\) cannot be merged.*format adapter"):
            export(record.path, format)


# ---- merged: every method that can merge ----------------------------------------

MERGEABLE = [n for n in methods.names() if methods.get(n).mergeable and "causal_lm" in methods.get(n).model_kinds]
CANNOT_MERGE = [n for n in methods.names() if not methods.get(n).mergeable]


@pytest.mark.parametrize("name", MERGEABLE)
def test_merged_weights_give_the_adapter_models_logits(name, runs_dir):
    from transformers import AutoModelForCausalLM

    from ftkit.export import export, outputs

    spec = methods.get(name)
    if spec.needs_cuda and not torch.cuda.is_available():
        pytest.skip(f"peft runs {spec.title} on CUDA only")
    record, before, after, samples = trained_run(quick_config("domain", name, runs_dir))
    assert diff(before, after, samples) > MIN_EFFECT, "training did not change the logits: the check would be vacuous"

    result = export(record.path, "merged")
    assert "model.safetensors" in result.files and "tokenizer.json" in result.files
    assert result.parity.tolerance == TOLERANCE and result.parity.max_abs_diff <= TOLERANCE
    merged = AutoModelForCausalLM.from_pretrained(str(result.out)).eval()
    assert not any(type(m).__module__.startswith("peft") for m in merged.modules())
    assert diff(outputs(merged, samples.check, "causal_lm"), after, samples) <= TOLERANCE


@pytest.mark.parametrize("name", CANNOT_MERGE)
def test_methods_that_cannot_merge_are_refused_with_the_reason(name, runs_dir):
    from ftkit.export import export
    from ftkit.tasks import tasks

    spec = methods.get(name)
    task = next(t for t in tasks if t.model_kind in spec.model_kinds)
    record = RunStore(runs_dir).create(quick_config(task.name, name, runs_dir))
    for format in ("merged", "onnx"):
        with pytest.raises(ConfigError) as err:
            export(record.path, format)
        message = str(err.value)
        assert f"({name}) cannot be merged" in message and "format adapter" in message, message
        assert "format:" in message
    assert not (record.path / "export").exists()


def test_full_fine_tuning_has_no_adapter_to_export(runs_dir):
    from ftkit.export import export

    record = RunStore(runs_dir).create(quick_config("domain", "full", runs_dir))
    with pytest.raises(ConfigError, match=r"saved the whole model.*use format merged"):
        export(record.path, "adapter")


def test_qlora_merges_onto_its_dequantized_base(runs_dir):
    import bitsandbytes as bnb
    from transformers import AutoModelForSequenceClassification

    from ftkit.export import export, outputs

    record, before, after, samples = trained_run(quick_config("classification", "qlora", runs_dir))
    assert diff(before, after, samples) > MIN_EFFECT

    result = export(record.path, "merged")
    assert any("4-bit base dequantized to float32" in n for n in result.notes)
    assert result.parity.max_abs_diff <= TOLERANCE
    merged = AutoModelForSequenceClassification.from_pretrained(str(result.out)).eval()
    assert merged.dtype == torch.float32
    assert not any(isinstance(m, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)) for m in merged.modules())
    assert diff(outputs(merged, samples.check, "seq_cls"), after, samples) <= TOLERANCE

    original = export(record.path, "merged", out=record.path / "export" / "original", quantized_base="original")
    assert any("original full-precision base" in n for n in original.notes)
    assert original.parity.tolerance is None  # reported, not enforced: 4-bit rounding is not reproduced
    assert original.parity.max_abs_diff > result.parity.max_abs_diff


def test_question_answering_export_matches_with_or_without_token_type_ids(runs_dir):
    from transformers import AutoModelForQuestionAnswering

    from ftkit.export import export, outputs

    record, before, after, samples = trained_run(quick_config("qa", "lora", runs_dir))
    assert samples.check["token_type_ids"].any()
    result = export(record.path, "merged")
    assert result.parity.max_abs_diff <= TOLERANCE
    merged = AutoModelForQuestionAnswering.from_pretrained(str(result.out)).eval()
    without = {k: v for k, v in samples.check.items() if k != "token_type_ids"}
    assert diff(outputs(merged, samples.check, "qa"), after, samples) <= TOLERANCE
    assert diff(outputs(merged, without, "qa"), after, samples) <= TOLERANCE


def test_an_export_over_its_tolerance_fails_and_can_be_redone(runs_dir):
    from ftkit.export import ExportError, export

    record, *_ = trained_run(quick_config("domain", "lora", runs_dir))
    with pytest.raises(ExportError, match=r"failed its check: merged model \(reloaded\) vs trained model.*OVER"):
        export(record.path, "merged", tolerance=1e-12)
    assert (record.path / "export" / "merged" / "model.safetensors").is_file()  # left for inspection
    assert export(record.path, "merged").parity.passed


def test_out_folder_holding_other_files_is_refused(cls_run, tmp_path):
    from ftkit.export import export

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match=r"out: .* is not empty and holds no earlier export"):
        export(cls_run.path, "merged", out=tmp_path)
    with pytest.raises(ConfigError, match=r"format: must be one of adapter, merged, onnx, got 'zip'"):
        export(cls_run.path, "zip")
    assert (tmp_path / "notes.txt").read_text() == "mine"


# ---- ONNX -------------------------------------------------------------------------

ONNX_CASES = {"causal_lm": "domain", "seq_cls": "classification", "token_cls": "ner"}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(ONNX_CASES))
def test_onnx_export_matches_pytorch(kind, runs_dir, cls_run):
    import numpy as np
    import onnxruntime
    from transformers import AutoTokenizer

    from ftkit.engine.loading import load_trained
    from ftkit.export import export, max_abs_diff, outputs

    if kind == "seq_cls":
        record = cls_run
    else:
        record, *_ = trained_run(quick_config(ONNX_CASES[kind], "lora", runs_dir))
    result = export(record.path, "onnx")
    assert {"model.onnx", "config.json", "tokenizer.json"} <= set(result.files)
    assert result.parity.what.startswith("ONNX Runtime") and result.parity.tolerance == TOLERANCE
    assert result.parity.max_abs_diff <= TOLERANCE

    # inputs the export never saw, of another batch size and length, through the exported tokenizer
    tokenizer = AutoTokenizer.from_pretrained(str(result.out))
    texts = ["the valley holds three kinds of fern", "a short one", "Ada Novak met Helix Labs in Lisbon today"]
    enc = tokenizer(texts, return_tensors="pt", padding=True)
    session = onnxruntime.InferenceSession(str(result.out / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    got = session.run(None, {n: enc[n].numpy().astype(np.int64) for n in names})[0]
    trained, _, _ = load_trained(record.path)
    want = outputs(trained, {n: enc[n] for n in names}, kind)["logits"]
    mask = enc["attention_mask"].bool() if kind != "seq_cls" else None
    assert max_abs_diff({"logits": got}, {"logits": want}, mask) <= TOLERANCE


# ---- CLI ------------------------------------------------------------------------


def test_cli_exports_and_says_what_went_wrong(cls_run, tmp_path, capsys):
    from ftkit.cli import main

    runs = str(cls_run.path.parent)
    out = tmp_path / "merged"
    assert main(["export", cls_run.id, "--format", "merged", "--out", str(out), "--runs-dir", runs, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["out"] == str(out) and "model.safetensors" in printed["files"]
    assert printed["checks"][-1]["passed"] and printed["checks"][-1]["max_abs_diff"] <= TOLERANCE

    suffix = cls_run.id.split("-", 2)[-1]  # "lora-classification-1a2b": a run id may be given by its end
    assert main(["export", suffix, "--format", "adapter", "--runs-dir", runs]) == 0
    text = capsys.readouterr().out
    assert f"exported run {cls_run.id} as adapter" in text and "max |diff| 0" in text

    assert main(["export", "no-such-run", "--format", "merged", "--runs-dir", runs]) == 2
    assert "no run 'no-such-run'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["export", cls_run.id, "--format", "zip", "--runs-dir", runs])
    assert exit_.value.code == 2 and "invalid choice: 'zip'" in capsys.readouterr().err
