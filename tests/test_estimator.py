"""The estimator: parameter counts equal to the real models and to peft's, ZeRO arithmetic, verdicts, CLI.

The method cases come from the registry, so a new method module is covered (and must give its
``params`` function) without touching this file.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ftkit import shapes as S
from ftkit.config import RunConfig
from ftkit.estimator import GB, estimate
from ftkit.methods import BuildContext, methods

VOCAB = 128
LLAMA = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=4, max_position_embeddings=128, pad_token_id=0)
BERT = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=128)


# ---- importing and calling it stays light ---------------------------------------------------------------

def test_estimating_and_advising_import_no_torch():
    code = (
        "import sys, ftkit\n"
        "e = ftkit.estimate('phi3-mini-qlora', gpus=1, gpu_memory_gb=24)\n"
        "assert e.fits and e.trainable_params > 0, e.table()\n"
        "a = ftkit.advise('chat', 'microsoft/Phi-3-mini-4k-instruct', gpus=1, gpu_memory_gb=24)\n"
        "assert a.ranked\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'peft', 'deepspeed', 'bitsandbytes') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


# ---- total parameters equal the real models' --------------------------------------------------------------

AUTO = {"causal_lm": "AutoModelForCausalLM", "seq_cls": "AutoModelForSequenceClassification",
        "token_cls": "AutoModelForTokenClassification", "qa": "AutoModelForQuestionAnswering",
        "seq2seq": "AutoModelForSeq2SeqLM"}
SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=VOCAB, max_position_embeddings=128, pad_token_id=0)
ARCHS = [(dict(model_type=t, **SMALL), k) for t in ("llama", "mistral", "qwen2", "phi3", "gemma", "gemma2")
         for k in ("causal_lm", "seq_cls", "token_cls")]
ARCHS += [(dict(model_type=t, **SMALL), "qa") for t in ("llama", "mistral", "qwen2")]
ARCHS += [
    (dict(model_type="llama", tie_word_embeddings=True, attention_bias=True, mlp_bias=True, **SMALL), "causal_lm"),
    (dict(model_type="gemma2", head_dim=32, **SMALL), "causal_lm"),
    (dict(model_type="bert", **BERT), "seq_cls"), (dict(model_type="bert", **BERT), "token_cls"),
    (dict(model_type="bert", **BERT), "qa"),
    (dict(model_type="t5", vocab_size=VOCAB, d_model=64, d_ff=128, d_kv=16, num_layers=2, num_decoder_layers=3,
          num_heads=4, feed_forward_proj="gated-gelu"), "seq2seq"),
]


def meta_model(config: dict, kind: str, num_labels: int = 3):
    torch = pytest.importorskip("torch")
    import transformers

    data = dict(config)
    model_type = data.pop("model_type")
    data.pop("architectures", None)
    if kind in ("seq_cls", "token_cls"):
        data["num_labels"] = num_labels
    hf = transformers.AutoConfig.for_model(model_type, **data)
    with torch.device("meta"):
        return getattr(transformers, AUTO[kind]).from_config(hf)


@pytest.mark.parametrize("config,kind", ARCHS, ids=[f"{c['model_type']}-{k}" for c, k in ARCHS])
def test_described_parameters_are_the_real_models(config, kind):
    model = meta_model(config, kind)
    shapes = S.shapes_for(config, kind, num_labels=3)
    assert dict(shapes.parameters()) == {n: p.numel() for n, p in model.named_parameters()}
    assert shapes.total == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name,kind", [("builtin:tiny-llama", "causal_lm"), ("builtin:tiny-t5", "seq2seq"),
                                       ("builtin:minilm", "seq_cls")])
def test_builtin_models_are_described_exactly(name, kind):
    data = S.load_config(name)
    assert S.shapes_for(data, kind, num_labels=3).total == sum(p.numel() for p in meta_model(data, kind).parameters())


#: published parameter counts of the shipped models (their model cards)
PUBLISHED = {
    "meta-llama/Llama-3.1-8B": 8_030_261_248, "mistralai/Mistral-7B-v0.3": 7_248_023_552,
    "Qwen/Qwen2.5-0.5B": 494_032_768, "Qwen/Qwen2.5-1.5B": 1_543_714_304, "Qwen/Qwen2.5-7B": 7_615_616_512,
    "google/gemma-2-2b": 2_614_341_888, "microsoft/Phi-3-small-8k-instruct": 7_392_272_384,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_shipped_configs_give_published_sizes(name):
    assert S.shapes_for(S.load_config(name), "causal_lm").total == PUBLISHED[name]


@pytest.mark.parametrize("name", [n for n in S.shipped_models() if S.load_config(n)["model_type"] != "phi3small"])
def test_shipped_configs_match_transformers(name):
    data = S.load_config(name)
    kind = "seq_cls" if data["model_type"] == "bert" else "causal_lm"
    assert S.shapes_for(data, kind, num_labels=3).total == sum(p.numel() for p in meta_model(data, kind).parameters())


@pytest.mark.parametrize("name", ["microsoft/Phi-3-mini-4k-instruct", "microsoft/Phi-3-medium-4k-instruct"])
def test_phi3_totals_match_the_plan(name):
    pytest.importorskip("peft")
    from ftkit.plan import plan

    config = RunConfig.preset("phi3-mini-qlora").update({"model.name_or_path": name, "method.name": "lora",
                                                          "quantization.bits": None})
    assert estimate(config).total_params - estimate(config).trainable_params == plan(config)["base_params"]
    assert S.from_run_config(config).total == plan(config)["base_params"]


# ---- trainable parameters equal peft's, for every registered method ------------------------------------------

def tiny(kind: str, **changes):
    import transformers as tf

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    if kind == "causal_lm":
        return tf.LlamaForCausalLM(tf.LlamaConfig(**{**LLAMA, **changes}))
    if kind == "seq_cls":
        return tf.BertForSequenceClassification(tf.BertConfig(**{**BERT, **changes}, num_labels=3))
    raise ValueError(kind)


def counts(name: str, kind: str, options=None, **model_changes) -> tuple[int, int]:
    """(peft's trainable count after the method's apply, the estimator's count from the config alone)."""
    pytest.importorskip("peft")
    from ftkit.engine.build import count_parameters

    spec = methods.get(name)
    if spec.needs_cuda:
        pytest.skip(f"{spec.title} needs CUDA in peft")
    options = options or spec.options()
    model = tiny(kind, **model_changes)
    shapes = S.shapes_for(model.config.to_dict(), kind, num_labels=3)
    ctx = BuildContext(model_kind=kind, model_type=model.config.model_type, total_steps=20)
    try:
        model = spec.apply(model, options, ctx)
    except ValueError as exc:  # the method refuses this model (ShadowPEFT on an encoder): so must the estimate
        with pytest.raises(Exception):
            spec.params(shapes, options, ctx)
        pytest.skip(str(exc))
    ctx = BuildContext(model_kind=kind, model_type=shapes.model_type, total_steps=20)
    return count_parameters(model)[0], spec.params(shapes, options, ctx)


CASES = [(s.name, k) for s in methods for k in ("causal_lm", "seq_cls") if k in s.model_kinds]


@pytest.mark.parametrize("name,kind", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_trainable_count_equals_peft(name, kind):
    real, predicted = counts(name, kind)
    assert predicted == real


def test_every_method_counts_its_parameters():
    missing = [s.name for s in methods if s.params is None]
    assert not missing, f"methods without a params function: {missing}"


VARIANTS = [
    ("lora", {"r": 4, "target_modules": "all-linear", "bias": "all"}, {}),
    ("lora", {"target_modules": ["q_proj", "embed_tokens"], "bias": "lora_only"}, {"attention_bias": True}),
    ("dora", {"target_modules": "all-linear"}, {"num_key_value_heads": 2}),
    ("prefix_tuning", {"prefix_projection": True, "encoder_hidden_size": 32}, {"num_key_value_heads": 2}),
    ("cartridge", {"num_frozen_tokens": 3}, {"num_key_value_heads": 2}),
    ("p_tuning", {"encoder_reparameterization_type": "LSTM", "encoder_num_layers": 2}, {}),
    ("lokr", {"r": 2, "decompose_both": True, "target_modules": "all-linear"}, {}),
    ("oft", {"oft_block_size": 16, "block_share": True}, {}),
    ("tinylora", {"weight_tying": 0.5, "target_modules": "all-linear"}, {}),
    ("ia3", {"target_modules": ["q_proj", "up_proj", "down_proj"], "feedforward_modules": ["down_proj"]}, {}),
    ("lily", {"stride_A": 2, "num_B": 3, "target_modules": ["q_proj", "v_proj", "up_proj"]}, {"num_hidden_layers": 3}),
    ("glora", {"config_A_B": "vector", "config_C": "vector", "config_D_E": "vector"}, {"attention_bias": True}),
    ("freeze", {"trainable_layers": 1, "trainable_patterns": ["norm"]}, {}),
    ("osf", {"effective_rank": 0.25, "target_modules": "all-linear"}, {}),
    ("gralora", {"r": 8, "gralora_k": 4, "hybrid_r": 2}, {}),
    ("supertuning", {"sparsity": 0.9, "r": 2}, {}),
]


@pytest.mark.parametrize("name,options,model", VARIANTS, ids=[v[0] for v in VARIANTS])
def test_trainable_count_equals_peft_with_options(name, options, model):
    spec = methods.get(name)
    real, predicted = counts(name, "causal_lm", spec.options(**options), **model)
    assert predicted == real


# ---- memory arithmetic ------------------------------------------------------------------------------------

def zero_config(stage, gpus=4):
    changes = {"model.name_or_path": "microsoft/Phi-3-mini-4k-instruct", "task.name": "domain",
               "method.name": "full", "distributed.num_processes": gpus, "distributed.launcher": "torchrun",
               "training.batch_size": 1, "training.max_seq_length": 64}
    if stage is not None:
        changes["distributed.zero_stage"] = stage
    return RunConfig().update(changes)


def model_states(e) -> float:
    keys = ("base weights", "gradients", "fp32 master weights", "optimizer states")
    return sum(v for k, v in e.breakdown.items() if k.startswith(keys) and "reuse" not in k)


@pytest.mark.parametrize("stage,per_param", [(0, lambda n: 16), (1, lambda n: 4 + 12 / n),
                                             (2, lambda n: 2 + 14 / n), (3, lambda n: 16 / n)])
@pytest.mark.parametrize("gpus", [2, 8])
def test_zero_partitions_states_as_the_paper_says(stage, per_param, gpus):
    """ZeRO (Rajbhandari et al. 2020), mixed precision with Adam: 2 + 2 + 12 bytes per parameter, of which
    stage 1 partitions the 12, stage 2 also the gradients' 2, stage 3 all 16."""
    e = estimate(zero_config(stage, gpus), device="A100-80GB")
    psi = e.total_params
    assert model_states(e) == pytest.approx(per_param(gpus) * psi, rel=1e-9)


def test_without_deepspeed_bf16_training_keeps_no_master_copy():
    e = estimate(zero_config(None, 1), device="A100-80GB")
    assert model_states(e) == pytest.approx(8 * e.total_params, rel=1e-9)  # bf16 weights, grads, 2 states


def test_offload_moves_optimizer_states_to_cpu():
    config = zero_config(2, 2).update({"distributed.offload_optimizer": "cpu"})
    on_gpu, offloaded = estimate(zero_config(2, 2)), estimate(config)
    assert offloaded.breakdown["optimizer states"] == 0 and offloaded.breakdown.get("fp32 master weights", 0) == 0
    moved = on_gpu.breakdown["optimizer states"] + on_gpu.breakdown["fp32 master weights"]
    assert offloaded.cpu_breakdown["optimizer states + fp32 masters (offloaded)"] == pytest.approx(2 * moved)
    assert offloaded.peak_bytes < on_gpu.peak_bytes


def test_nf4_weights_with_and_without_double_quantization():
    config = RunConfig.preset("phi3-mini-qlora")
    shapes = S.from_run_config(config)
    quantized = sum(m.weight_numel for m in shapes.linears if m.name != "lm_head")
    dq = estimate(config).breakdown["base weights (nf4)"]
    plain = estimate(config.set("quantization.double_quant", False)).breakdown["base weights (nf4)"]
    assert plain == pytest.approx(quantized * (0.5 + 4 / 64), rel=1e-3)  # fp32 absmax per 64 weights
    assert dq == pytest.approx(quantized * (0.5 + 1 / 64 + 4 / (64 * 256)), rel=2e-3)  # 8-bit absmax + fp32 per 256
    int8 = estimate(config.update({"method.name": "lora", "quantization.bits": 8})).breakdown["base weights (int8)"]
    assert int8 == pytest.approx(quantized, rel=2e-3)
    # what bitsandbytes leaves unquantized is cast to fp32 for k-bit training
    assert estimate(config).breakdown["base weights (fp32)"] == pytest.approx(
        4 * (shapes.total - quantized), rel=1e-6)


def test_checkpointing_and_smaller_batches_shrink_activations():
    config = RunConfig.preset("phi3-mini-qlora")
    base = estimate(config.set("training.gradient_checkpointing", False))
    ckpt = estimate(config)
    small = estimate(config.set("training.batch_size", 1))
    assert ckpt.breakdown["activations (layers)"] < base.breakdown["activations (layers)"] / 5
    assert small.breakdown["activations (layers)"] == pytest.approx(ckpt.breakdown["activations (layers)"] / 4)
    assert small.breakdown["activations (logits + loss)"] == pytest.approx(
        ckpt.breakdown["activations (logits + loss)"] / 4)


def test_time_grows_with_tokens_and_full_training_costs_more_per_token():
    config = RunConfig.preset("phi3-mini-qlora").set("quantization.bits", None).set("method.name", "lora")
    lora = estimate(config, device="H100-80GB")
    full = estimate(config.set("method.name", "full"), device="H100-80GB")
    longer = estimate(config.set("training.gradient_accumulation_steps", 8), device="H100-80GB")
    assert full.flops_per_step > lora.flops_per_step
    assert longer.seconds_per_step == pytest.approx(2 * lora.seconds_per_step, rel=1e-6)
    assert 0 < lora.seconds_per_step < 60


# ---- verdicts -------------------------------------------------------------------------------------------

def test_fitting_run_says_so():
    e = estimate(RunConfig.preset("phi3-mini-qlora"), gpus=1, gpu_memory_gb=24)
    assert e.fits and e.verdict.startswith("fits on 1 x 24 GiB") and not e.suggestions


def test_first_change_for_a_run_that_does_not_fit():
    config = RunConfig.preset("phi3-mini-qlora").update({
        "method.name": "full", "quantization.bits": None, "training.gradient_checkpointing": False})
    e = estimate(config, gpus=1, gpu_memory_gb=24)
    assert not e.fits
    assert e.first_suggestion == "turn on training.gradient_checkpointing"
    assert e.verdict.startswith("does not fit on 1 x 24 GiB") and "gradient_checkpointing" in e.verdict
    assert e.suggestions[-1]["fits"]  # following the list in order ends with a run that fits
    assert [s["peak_gb"] for s in e.suggestions] == sorted((s["peak_gb"] for s in e.suggestions), reverse=True)


def test_several_gpus_suggest_zero_before_offload():
    config = RunConfig.preset("phi3-mini-qlora").update({
        "model.name_or_path": "microsoft/Phi-3-medium-4k-instruct", "method.name": "freeze",
        "method.freeze.trainable_layers": 40, "quantization.bits": None, "training.batch_size": 1,
        "distributed.num_processes": 4, "distributed.launcher": "torchrun"})
    e = estimate(config, gpus=4, gpu_memory_gb=40)
    assert not e.fits
    changes = [s["change"] for s in e.suggestions]
    assert changes[:3] == ["distributed.zero_stage 1", "distributed.zero_stage 2", "distributed.zero_stage 3"]
    assert "offload" in changes[-1] and e.suggestions[-1]["fits"]


def test_table_and_dict():
    e = estimate(RunConfig.preset("phi3-mini-qlora"), gpus=1, gpu_memory_gb=24)
    text = e.table()
    for word in ("base weights (nf4)", "optimizer states", "activations", "framework overhead", "verdict"):
        assert word in text
    data = json.loads(json.dumps(e.to_dict()))
    assert data["trainable_params"] == e.trainable_params and data["fits"] is True
    assert sum(data["breakdown_gb"].values()) == pytest.approx(e.peak_gb, abs=1e-2)


# ---- command line ---------------------------------------------------------------------------------------

def test_cli_estimate_json(capsys):
    from ftkit.cli import main

    assert main(["estimate", "--preset", "phi3-mini-qlora", "--gpus", "1", "--gpu-memory", "24", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fits"] is True and data["gpus"] == 1 and data["gpu_memory_gb"] == 24
    assert data["model"] == "microsoft/Phi-3-mini-4k-instruct" and data["trainable_params"] > 1e6


def test_cli_estimate_table_and_bad_config(capsys, tmp_path):
    from ftkit.cli import main

    assert main(["estimate", "--preset", "phi3-mini-qlora", "--gpu-memory", "8",
                 "--set", "method.name=full", "--set", "quantization.bits=none"]) == 0
    assert "does not fit on 1 x 8 GiB" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text("training:\n  batch_size: 0\n")
    assert main(["estimate", str(bad)]) == 2
    assert "training.batch_size" in capsys.readouterr().err


# ---- a finished run records predicted and measured peaks --------------------------------------------------

def test_summary_records_predicted_and_measured_peak(tmp_path):
    pytest.importorskip("torch")
    from ftkit.engine.train import train

    config = RunConfig().update({
        "task.name": "domain", "method.name": "lora", "data.max_train_samples": 16, "data.max_eval_samples": 2,
        "training.max_steps": 2, "training.batch_size": 2, "training.max_seq_length": 32,
        "training.eval_steps": 0, "runs_dir": str(tmp_path)})
    (tmp_path / "run").mkdir()
    summary = train(config, tmp_path / "run")
    assert summary["status"] == "finished", summary["reason"]
    assert summary["baseline_rss_mb"] > 50
    assert summary["predicted_peak_mb"] > 0 and summary["run_peak_mb"] > 0
    assert summary["predicted_peak_mb"] == pytest.approx(
        estimate(config, device="CPU", gpus=1).allocated_mb, abs=0.1)


# ---- settings that change the run and the estimate; what-ifs; phases; units; tight verdicts ----------------

def lora_run(**changes):
    return RunConfig.preset("phi3-mini-qlora").update({"method.name": "lora", "quantization.bits": None,
                                                       "training.gradient_checkpointing": False, **changes})


def test_fused_cross_entropy_drops_the_logits_term():
    plain, fused = estimate(lora_run()), estimate(lora_run(**{"training.fused_cross_entropy": True}))
    b, s, v = 4, 1024, 32064
    key = "activations (logits + loss)"
    config = lora_run()
    b, s, v = config.training.batch_size, config.training.max_seq_length, 32064
    assert plain.breakdown[key] >= b * s * v * 12
    assert fused.breakdown[key] < plain.breakdown[key] / 4
    assert fused.peak_bytes < plain.peak_bytes


def test_adapter_dtype_base_halves_adapter_weights_and_states():
    f32, base = estimate(lora_run()), estimate(lora_run(**{"training.adapter_dtype": "base"}))
    key = "trainable weights (adapters, heads)"
    assert base.breakdown[key] == pytest.approx(f32.breakdown[key] / 2)
    assert base.breakdown["optimizer states"] == pytest.approx(f32.breakdown["optimizer states"] / 2)


def test_adapter_dtype_base_keeps_peft_adapters_in_the_base_dtype():
    torch = pytest.importorskip("torch")
    pytest.importorskip("peft")
    import transformers as tf

    spec = methods.get("lora")
    counted = {}
    for dtype in ("float32", "base"):
        model = tf.LlamaForCausalLM(tf.LlamaConfig(**LLAMA)).to(torch.bfloat16)
        ctx = BuildContext(model_kind="causal_lm", model_type="llama", adapter_dtype=dtype)
        model = spec.apply(model, spec.options(), ctx)
        counted[dtype] = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    assert counted["base"] * 2 == counted["float32"]
    config = RunConfig().update({"model.name_or_path": "builtin:tiny-llama", "task.name": "domain",
                                 "method.name": "lora", "model.dtype": "bfloat16", "training.precision": "bf16"})
    key = "trainable weights (adapters, heads)"
    e32, eb = estimate(config, device="H100-80GB"), estimate(config.set("training.adapter_dtype", "base"),
                                                             device="H100-80GB")
    assert eb.breakdown[key] * 2 == pytest.approx(e32.breakdown[key])


def test_training_arguments_carry_compile_and_refuse_fused_loss_without_liger():
    pytest.importorskip("transformers")
    import importlib.util

    from transformers import TrainingArguments

    from ftkit.engine.settings import training_argument_extras

    config = lora_run(**{"training.torch_compile": True})
    assert training_argument_extras(config, TrainingArguments) == {"torch_compile": True}
    fused = lora_run(**{"training.fused_cross_entropy": True})
    if importlib.util.find_spec("liger_kernel") is None:
        with pytest.raises(RuntimeError, match="liger-kernel"):
            training_argument_extras(fused, TrainingArguments)
    else:
        assert training_argument_extras(fused, TrainingArguments)["use_liger_kernel"] is True
    assert training_argument_extras(lora_run(), TrainingArguments) == {}


def test_checkpointing_variant_reaches_training_arguments(tmp_path):
    pytest.importorskip("transformers")
    from ftkit.engine.train import training_arguments

    for reentrant in (False, True):
        config = lora_run(**{"training.gradient_checkpointing": True,
                             "training.gradient_checkpointing_reentrant": reentrant})
        args = training_arguments(config, tmp_path, generate=False, has_eval=False)
        kwargs = getattr(args, "activation_checkpointing_kwargs", None) or args.gradient_checkpointing_kwargs
        assert kwargs == {"use_reentrant": reentrant}
    same = [estimate(lora_run(**{"training.gradient_checkpointing": True,
                                 "training.gradient_checkpointing_reentrant": r})).peak_bytes for r in (False, True)]
    assert same[0] == same[1]


def test_paged_optimizer_states_are_shown_apart():
    plain, paged = estimate(lora_run()), estimate(lora_run(**{"training.optimizer": "paged_adamw_8bit"}))
    assert paged.breakdown["optimizer states"] == 0
    assert paged.unified_breakdown["optimizer states (paged)"] == pytest.approx(
        estimate(lora_run(**{"training.optimizer": "adamw_bnb_8bit"})).breakdown["optimizer states"])
    assert "unified memory" in paged.table() and paged.peak_bytes < plain.peak_bytes


def test_what_ifs_change_the_estimate_and_say_so():
    base = estimate(lora_run())
    offload = estimate(lora_run(**{"whatif.activation_offloading": True}))
    assert offload.breakdown["activations (layers)"] < base.breakdown["activations (layers)"] / 3
    assert offload.what_if and "what-if" in offload.table()
    full = lora_run(**{"method.name": "full", "training.batch_size": 1})
    in_bwd = estimate(full.set("whatif.optimizer_in_backward", True))
    assert in_bwd.breakdown["gradients"] < estimate(full).breakdown["gradients"] / 10
    assert not base.what_if


def test_torch_compile_speeds_the_step_and_notes_memory():
    base, compiled = estimate(lora_run()), estimate(lora_run(**{"training.torch_compile": True}))
    assert compiled.seconds_per_step < base.seconds_per_step
    assert any("torch.compile" in n for n in compiled.notes)


def test_loading_and_generation_peaks_and_which_is_the_peak():
    e = estimate(RunConfig.preset("phi3-mini-qlora"), gpus=1, gpu_memory_gb=24)
    assert set(e.phases) == {"loading", "generation"} and e.peak_phase == "training"
    # translation generates over the whole eval batch with beams: a large enough one peaks above training
    config = RunConfig().update({"task.name": "translation", "model.name_or_path": "builtin:tiny-t5",
                                 "method.name": "lora", "training.batch_size": 1, "training.eval_batch_size": 512,
                                 "task.translation.num_beams": 8, "task.translation.max_new_tokens": 512})
    g = estimate(config, device="A100-80GB")
    assert g.peak_phase == "generation" and g.peak_bytes == g.phases["generation"] > g.training_bytes
    assert "generating at evaluation" in g.verdict and "peak (generation)" in g.table()


def test_units_are_gib_and_name_the_measure():
    text = estimate(RunConfig.preset("phi3-mini-qlora"), gpus=1, gpu_memory_gb=24).table()
    assert " GB" not in text.replace("GB)", "")
    for word in ("GiB", "max_memory_allocated", "max_memory_reserved", "CUDA context"):
        assert word in text
    e = estimate(RunConfig.preset("phi3-mini-qlora"))
    assert e.reserved_gb == pytest.approx(e.peak_gb - e.breakdown["framework overhead"] / GB)


def test_tight_verdict_near_the_limit():
    config = RunConfig.preset("phi3-mini-qlora")
    need = estimate(config).peak_gb
    tight = estimate(config, gpus=1, gpu_memory_gb=need / 0.99)
    assert tight.fit == "tight" and tight.verdict.startswith("tight on 1 x")
    assert tight.suggestions and tight.first_suggestion in tight.verdict
    assert estimate(config, gpus=1, gpu_memory_gb=need / 1.2).fit == "does not fit"
    assert estimate(config, gpus=1, gpu_memory_gb=need / 0.9).fit == "fits"


# ---- padding-free batches: a setting that runs (engine/settings.py) and moves the estimate -----------------

def test_padding_free_moves_the_estimate_from_padded_to_mean_length():
    base = estimate(lora_run())
    s = lora_run().training.max_seq_length
    packed = estimate(lora_run(**{"training.padding_free": True, "whatif.mean_seq_length": 256}))
    for key in ("activations (layers)", "activations (logits + loss)"):
        assert packed.breakdown[key] == pytest.approx(base.breakdown[key] * 256 / s, rel=1e-6)
    assert packed.tokens_per_step == pytest.approx(base.tokens_per_step * 256 / s)
    assert not packed.what_if and any("padding-free" in n for n in packed.notes)
    # without the data's mean length: the padded length, and the note says what to set
    unknown = estimate(lora_run(**{"training.padding_free": True}))
    assert unknown.breakdown["activations (layers)"] == pytest.approx(base.breakdown["activations (layers)"])
    assert any("whatif.mean_seq_length" in n for n in unknown.notes)
    # eager attention keeps scores over the whole packed row: a batch of 4 packed costs more than padded
    eager = {"model.attn_implementation": "eager", "training.batch_size": 4}
    padded = estimate(lora_run(**eager, **{"whatif.mean_seq_length": 256}))
    row = estimate(lora_run(**eager, **{"training.padding_free": True, "whatif.mean_seq_length": s}))
    assert row.breakdown["activations (layers)"] > padded.breakdown["activations (layers)"]


@pytest.mark.parametrize("changes, words", [
    ({"task.name": "classification"}, "causal LM tasks"),
    ({"method.name": "prompt_tuning"}, "position_ids"),
])
def test_padding_free_is_refused_where_it_would_mix_examples(changes, words):
    with pytest.raises(ValueError) as err:
        lora_run(**{"training.padding_free": True, **changes})
    assert "training.padding_free" in str(err.value) and words in str(err.value)


def _rows(lengths, seed=0):
    import torch

    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(1, VOCAB, (n,), generator=g).tolist()
        out.append({"input_ids": ids, "labels": list(ids)})
    return out


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_padding_free_batch_has_the_padded_batch_loss(attn):
    """Same rows, one padded batch and one packed row: equal losses prove that no example sees another."""
    import torch
    import transformers as tf

    from ftkit.engine.settings import data_collator
    from ftkit.tasks._causal import LMCollator

    torch.manual_seed(0)
    model = tf.LlamaForCausalLM(tf.LlamaConfig(**LLAMA, attn_implementation=attn)).eval()
    config = RunConfig.from_dict({"task": {"name": "domain"}, "training": {"padding_free": True}})
    padded_collator = LMCollator(0)
    assert data_collator(config.update({"training.padding_free": False}), padded_collator, model) is padded_collator
    flat = data_collator(config, padded_collator, model)
    assert isinstance(flat, tf.DataCollatorWithFlattening)
    rows = _rows([5, 9, 13, 7])
    with torch.no_grad():
        padded = model(**padded_collator(rows)).loss.item()
        batch = flat(rows)
        assert batch["input_ids"].shape == (1, 34) and "attention_mask" not in batch
        assert batch["use_cache"] is False
        packed = model(**batch).loss.item()
        # the same row as one long text (no position_ids), or with a KV cache (masking_utils then looks for no
        # packed examples): examples attend to each other, another loss
        mixed = model(input_ids=batch["input_ids"], labels=batch["labels"]).loss.item()
        cached = model(**{**batch, "use_cache": True}).loss.item()
    assert packed == pytest.approx(padded, abs=1e-5)
    assert abs(mixed - padded) > 1e-4 and abs(cached - padded) > 1e-4


def test_padding_free_refuses_a_model_that_would_not_see_the_boundaries():
    from types import SimpleNamespace

    from ftkit.engine.settings import padding_free_refusal

    class Homemade:  # defined here, where no create_causal_mask is imported
        config = SimpleNamespace(_attn_implementation="sdpa")

        def forward(self, input_ids, position_ids=None):
            return input_ids

    assert "masking_utils" in padding_free_refusal(Homemade())
    Homemade.config = SimpleNamespace(_attn_implementation="my_kernel")
    assert "my_kernel" in padding_free_refusal(Homemade())


def test_a_padding_free_run_feeds_packed_rows_and_logs_the_padded_runs_loss(monkeypatch):
    """The run itself: a domain run with padding_free trains on packed rows (one row, position_ids, no cache)
    and logs the padded run's first loss (same rows, same seed, no dropout)."""
    pytest.importorskip("peft")
    import transformers as tf

    from ftkit.engine.train import train
    from ftkit.store import RunStore

    seen = []
    flatten = tf.DataCollatorWithFlattening.__call__

    def spy(self, features, *args, **kwargs):
        batch = flatten(self, features, *args, **kwargs)
        seen.append((tuple(batch["input_ids"].shape), sum(len(f["input_ids"]) for f in features)))
        return batch

    monkeypatch.setattr(tf.DataCollatorWithFlattening, "__call__", spy)
    config = RunConfig().update({"model.name_or_path": "builtin:tiny-llama", "task.name": "domain",
                                 "method.name": "lora", "method.lora.lora_dropout": 0.0, "training.max_steps": 2,
                                 "training.batch_size": 4, "training.logging_steps": 1, "training.eval_steps": 0,
                                 "data.max_eval_samples": 8})
    losses = {}
    for free in (False, True):
        run_config = config.set("training.padding_free", free)
        record = RunStore().create(run_config)
        summary = train(run_config, record.path)
        assert summary["status"] == "finished", summary["reason"]
        losses[free] = summary["loss_first"]
        assert bool(seen) == free
    assert all(shape == (1, tokens) for shape, tokens in seen)
    assert losses[True] == pytest.approx(losses[False], abs=1e-4)
