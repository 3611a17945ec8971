"""Every registered method trains a tiny model, saves, reloads and (where it can) merges exactly.

The cases come from the registry, so a new method module is covered without
touching this file.
"""
from __future__ import annotations

import math
import os

import pytest

from ftkit.config import RunConfig
from ftkit.engine.loading import differentiable_4bit
from ftkit.methods import BuildContext, methods
from ftkit.methods._base import MODEL_KINDS
from ftkit.methods._unsupported import UNSUPPORTED
from ftkit.schema import Options
from ftkit.tasks import tasks

torch = pytest.importorskip("torch")
torch.set_num_threads(1)

STEPS = 20
BATCH, SEQ, VOCAB = 4, 12, 128
LEVELS = ("lowest", "low", "medium", "high")
#: adapters and prompts learn few parameters on a random tiny model: a large step shows learning in 20 steps
LEARNING_RATE = {"adapter": 3e-2, "prompt": 3e-2, "full": 1e-3}
#: the least a loss must fall in STEPS steps for methods that are not marked barely_learns
MIN_FALL = 0.02


# ---- tiny models and batches ------------------------------------------------


def tiny_model(kind: str, seed: int = 0):
    """A small randomly initialised model with the head ``kind`` needs; same seed, same weights."""
    import transformers as tf

    torch.manual_seed(seed)
    llama = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128, pad_token_id=0)
    bert = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=128)
    if kind == "causal_lm":
        model = tf.LlamaForCausalLM(tf.LlamaConfig(**llama))
    elif kind == "seq_cls":
        model = tf.LlamaForSequenceClassification(tf.LlamaConfig(**llama, num_labels=2))
    elif kind == "seq2seq":
        model = tf.T5ForConditionalGeneration(tf.T5Config(
            vocab_size=VOCAB, d_model=64, d_ff=128, d_kv=16, num_layers=2, num_decoder_layers=2, num_heads=4,
            decoder_start_token_id=0, pad_token_id=0))
    elif kind == "token_cls":
        model = tf.BertForTokenClassification(tf.BertConfig(**bert, num_labels=3))
    elif kind == "qa":
        model = tf.BertForQuestionAnswering(tf.BertConfig(**bert))
    else:
        raise ValueError(kind)
    return model.eval()


def tiny_batch(kind: str) -> dict:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, VOCAB, (BATCH, SEQ), generator=g)
    ids[:, 0], ids[:, -1] = 1, 2  # bos ... eos, as a tokenizer gives them
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if kind == "causal_lm":
        batch["labels"] = ids.clone()
    elif kind == "seq_cls":
        batch["labels"] = torch.tensor([0, 1, 1, 0])
    elif kind == "seq2seq":
        batch["labels"] = torch.randint(3, VOCAB, (BATCH, 6), generator=g)
    elif kind == "token_cls":
        batch["labels"] = torch.randint(0, 3, (BATCH, SEQ), generator=g)
    elif kind == "qa":
        batch["start_positions"] = torch.tensor([1, 3, 5, 2])
        batch["end_positions"] = torch.tensor([4, 6, 8, 2])
    return batch


def first_kind(spec) -> str:
    return next(k for k in MODEL_KINDS if k in spec.model_kinds)


def context(kind: str, model, steps: int = STEPS, quantized: bool = False) -> BuildContext:
    return BuildContext(model_kind=kind, model_type=model.config.model_type, total_steps=steps, quantized=quantized)


def logits_of(model, batch: dict):
    model.eval()
    inputs = {k: v for k, v in batch.items() if k not in ("labels", "start_positions", "end_positions")}
    if "decoder_input_ids" not in inputs and model.config.is_encoder_decoder:
        inputs["decoder_input_ids"] = batch["labels"]
    with torch.no_grad():
        out = model(**inputs)
    return out.logits if hasattr(out, "logits") and out.logits is not None else out.start_logits


def loss_of(model, batch: dict) -> float:
    model.eval()
    with torch.no_grad():
        return float(model(**batch).loss)


def trainable(model) -> dict:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def train(model, batch: dict, ctx: BuildContext, lr: float, steps: int = STEPS) -> list[float]:
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    losses = []
    model.train()
    for step in range(steps):
        loss = model(**batch).loss
        loss.backward()
        opt.step()
        if ctx.on_step is not None:
            ctx.on_step(model, step)
        opt.zero_grad()
        losses.append(float(loss))
    model.eval()
    return losses


def skip_without_cuda(spec) -> None:
    if spec.needs_cuda and not torch.cuda.is_available():
        pytest.skip(f"peft runs {spec.title} on CUDA only")


def build(name: str, kind: str | None = None, seed: int = 0):
    spec = methods.get(name)
    skip_without_cuda(spec)
    kind = kind or first_kind(spec)
    model = tiny_model(kind, seed)
    ctx = context(kind, model)
    model = spec.apply(model, spec.options(), ctx)
    return spec, kind, model, ctx


# ---- the registry's own promises --------------------------------------------

ADAPTERS = [n for n in methods.names() if methods.get(n).kind != "full"]


@pytest.mark.parametrize("name", methods.names())
def test_spec_is_complete(name):
    spec = methods.get(name)
    assert spec.name == name and name.isidentifier() and name == name.lower()
    assert spec.title and spec.summary.strip() and spec.family
    assert spec.model_kinds and set(spec.model_kinds) <= set(MODEL_KINDS)
    assert set(spec.why_not) <= set(MODEL_KINDS) - set(spec.model_kinds)
    assert spec.kind in ("full", "adapter", "prompt")
    assert spec.trades.memory.split()[0] in LEVELS and spec.trades.params.split()[0] in LEVELS + ("all",)
    assert spec.trades.speed
    assert issubclass(spec.options, Options)
    for field_name, info in spec.options.model_fields.items():
        assert info.description and len(info.description) > 10, f"{name}.{field_name} has no help text"
    spec.options()  # defaults validate
    if spec.kind != "full":
        import peft

        assert spec.peft_type in peft.PeftType.__members__
    for kind in MODEL_KINDS:
        assert (spec.refuses(kind) is None) == (kind in spec.model_kinds)


def test_registry_covers_every_peft_tuner():
    import peft

    offered = {methods.get(n).peft_type for n in methods.names()} - {None}
    left_out = {name.upper() for name in UNSUPPORTED}
    missing = set(peft.PeftType.__members__) - offered - left_out
    assert not missing, f"peft tuners neither registered nor listed in _unsupported: {sorted(missing)}"
    assert not offered & left_out
    assert all(len(reason) > 30 for reason in UNSUPPORTED.values())


@pytest.mark.parametrize("name", methods.names())
def test_config_accepts_method(name):
    spec = methods.get(name)
    task = next((t for t in tasks if t.model_kind in spec.model_kinds), None)
    if task is None:
        pytest.skip(f"no registered task trains a {'/'.join(sorted(spec.model_kinds))} model")
    config = RunConfig().update({"task.name": task.name, "method.name": name})
    assert config.method_spec is spec and isinstance(config.method_options, spec.options)
    other = next((t for t in tasks if t.model_kind not in spec.model_kinds), None)
    if other is not None:
        with pytest.raises(Exception, match="method.name"):
            RunConfig().update({"task.name": other.name, "method.name": name})


def test_importing_methods_stays_light():
    import subprocess
    import sys

    code = ("import sys, ftkit.methods as m; m.methods.names(); "
            "print(sorted(k for k in ('torch', 'peft', 'transformers') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---- training, saving, reloading, merging -----------------------------------


@pytest.mark.parametrize("name", ADAPTERS)
def test_method_trains_saves_reloads_and_merges(name, tmp_path):
    from peft import PeftModel

    spec, kind, model, ctx = build(name)
    batch = tiny_batch(kind)
    assert any(p.requires_grad for p in model.parameters())
    before, start = trainable(model), loss_of(model, batch)
    losses = train(model, batch, ctx, LEARNING_RATE[spec.kind])
    end = loss_of(model, batch)
    after = trainable(model)
    assert all(math.isfinite(x) for x in losses + [end]), losses
    assert any(not torch.equal(before[n], after[n]) for n in before), "no trainable parameter changed"
    if not spec.barely_learns:
        assert end < start - MIN_FALL, f"loss did not fall: {start:.4f} -> {end:.4f}"

    expected = logits_of(model, batch)
    model.save_pretrained(str(tmp_path / "adapter"))
    reloaded = PeftModel.from_pretrained(tiny_model(kind), str(tmp_path / "adapter"))
    torch.testing.assert_close(logits_of(reloaded, batch), expected, atol=1e-5, rtol=1e-5)

    if spec.mergeable:
        merged = model.merge_and_unload()
        assert not any(type(m).__module__.startswith("peft.tuners") for m in merged.modules())
        torch.testing.assert_close(logits_of(merged, batch), expected, atol=1e-4, rtol=1e-4)
    else:
        with pytest.raises((NotImplementedError, AttributeError, ValueError, TypeError, RuntimeError)):
            model.merge_and_unload()


OTHER_KINDS = [(n, k) for n in ADAPTERS for k in MODEL_KINDS
               if k in methods.get(n).model_kinds and k != first_kind(methods.get(n))]


@pytest.mark.parametrize("name,kind", OTHER_KINDS)
def test_method_trains_every_claimed_model_kind(name, kind):
    spec, kind, model, ctx = build(name, kind)
    batch = tiny_batch(kind)
    before = trainable(model)
    losses = train(model, batch, ctx, LEARNING_RATE[spec.kind], steps=3)
    assert all(math.isfinite(x) for x in losses), losses
    assert any(not torch.equal(before[n], p) for n, p in trainable(model).items())


def test_adalora_reallocates_rank():
    """The step hook prunes to target_r on average and moves rank between matrices."""
    spec, kind, model, ctx = build("adalora")
    assert ctx.on_step is not None
    train(model, tiny_batch(kind), ctx, LEARNING_RATE["adapter"])
    options = spec.options()
    ranks = [int((m.lora_E["default"] != 0).sum()) for m in model.modules() if hasattr(m, "lora_E")]
    assert sum(ranks) <= options.target_r * len(ranks) < options.init_r * len(ranks)
    assert max(ranks) > options.target_r, ranks


@pytest.mark.parametrize("name", ["full", "freeze"])
def test_full_methods_train_the_model_itself(name):
    spec = methods.get(name)
    kind = first_kind(spec)
    model = tiny_model(kind)
    original = {n: p.detach().clone() for n, p in model.named_parameters()}
    ctx = context(kind, model)
    options = spec.options(trainable_layers=1) if name == "freeze" else spec.options()
    model = spec.apply(model, options, ctx)
    batch = tiny_batch(kind)
    start = loss_of(model, batch)
    train(model, batch, ctx, LEARNING_RATE["full"])
    assert loss_of(model, batch) < start * 0.95
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, original[n])}
    if name == "full":
        assert all(p.requires_grad for p in model.parameters())
        assert "model.layers.0.self_attn.q_proj.weight" in changed
    else:
        assert not any(n.startswith(("model.layers.0.", "model.embed")) for n in changed), changed
        assert any(n.startswith("model.layers.1.") for n in changed) and "lm_head.weight" in changed


# ---- a 4-bit base ------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_llama_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-llama")
    tiny_model("causal_lm").save_pretrained(str(path))
    return str(path)


def load_4bit(path: str):
    import transformers as tf

    quant = tf.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32,
                                  llm_int8_skip_modules=["lm_head"])
    model = tf.LlamaForCausalLM.from_pretrained(path, quantization_config=quant, device_map={"": "cpu"})
    return differentiable_4bit(model)  # as ftkit's own loading does (engine.loading)


QUANT_CASES = [n for n in ADAPTERS if "causal_lm" in methods.get(n).model_kinds]


@pytest.mark.parametrize("name", QUANT_CASES)
def test_quantized_base_flag_holds(name, tiny_llama_dir):
    """quantized_base=True: trains on a 4-bit nf4 base. False: refuses it, or nothing trains."""
    pytest.importorskip("bitsandbytes")
    spec = methods.get(name)
    skip_without_cuda(spec)
    model = load_4bit(tiny_llama_dir)
    assert any(type(m).__name__ == "Linear4bit" for m in model.modules())
    batch = tiny_batch("causal_lm")
    ctx = context("causal_lm", model, steps=8, quantized=True)
    if not spec.quantized_base:
        try:
            model = spec.apply(model, spec.options(), ctx)
            before = trainable(model)
            train(model, batch, ctx, LEARNING_RATE[spec.kind], steps=4)
        except (RuntimeError, TypeError, ValueError, AttributeError):
            return
        after = trainable(model)
        assert all(torch.equal(before[n], after[n]) for n in before), (
            f"{name} trains on a 4-bit base: set quantized_base=True")
        return
    model = spec.apply(model, spec.options(), ctx)
    before, start = trainable(model), loss_of(model, batch)
    losses = train(model, batch, ctx, LEARNING_RATE[spec.kind], steps=8)
    after = trainable(model)
    assert all(math.isfinite(x) for x in losses)
    assert any(not torch.equal(before[n], after[n]) for n in before)
    if not spec.barely_learns:
        assert loss_of(model, batch) < start


def test_boft_leaves_the_compiler_variables_as_they_were(monkeypatch, tmp_path):
    """peft's BOFT sets CC and CXX to gcc for its CUDA build and, when that fails (no CUDA), never puts them
    back: every later process then builds DeepSpeed's op with another compiler command, and rebuilds it."""
    from ftkit.engine.loading import load_adapter

    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setenv("CXX", "c++")
    _, kind, model, _ = build("boft")
    model.save_pretrained(str(tmp_path / "adapter"))
    load_adapter(tiny_model(kind), tmp_path / "adapter")
    assert "CC" not in os.environ and os.environ["CXX"] == "c++"
