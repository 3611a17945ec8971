"""Predictions from briefly trained runs of every task: result shapes, offsets, determinism, CLI.

Each task's preset trains for a few steps (one run per task, shared by the
module, trained on first use). The generation tasks must reproduce the
samples the run itself logged at its last evaluation: the same prompt
formatting, options and seed give the same text, so predict formats input
exactly as training did.
"""
from __future__ import annotations

import json
import math
import time

import pytest

from ftkit.cli import main
from ftkit.config import RunConfig
from ftkit.controller import Controller
from ftkit.engine.train import train
from ftkit.predict import Answer, Classification, Entities, Generation, PredictError, Predictor, split_words
from ftkit.store import RunStore

QUICK = {
    "training.max_steps": 16, "training.batch_size": 8, "training.logging_steps": 4, "training.eval_steps": 0,
    "training.save_steps": 0, "data.max_eval_samples": 8,
}
#: per task: its preset and what makes a few steps enough
TASKS = {
    "classification": ("demo", {"training.max_steps": 30, "training.learning_rate": 5e-3,
                                "training.max_seq_length": 48}),
    "ner": ("ner-demo", {"training.max_steps": 30, "training.learning_rate": 5e-3}),
    "qa": ("qa-demo", {"training.learning_rate": 5e-3, "training.max_seq_length": 64}),
    "domain": ("domain-demo", {"training.max_seq_length": 64}),
    "chat": ("chat-demo", {"training.max_seq_length": 64}),
    "creative": ("creative-demo", {"training.max_seq_length": 64, "task.creative.max_new_tokens": 16}),
    "translation": ("translation-demo", {"task.translation.max_new_tokens": 16}),
}
PROMPTS = {"domain": "Species: Emberleaf.", "chat": "What is the capital of Corra?",
           "creative": "Title: The Fox\n", "translation": "the cat sees a dog ."}
QA = {"question": "Where was Mara Quill born?",
      "context": "Mara Quill was born in Lowmere in 1850. She worked as a baker in Hollin."}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from a second intra-op thread, and on a shared runner it can cost 10x."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("predict-runs")


@pytest.fixture(scope="module")
def trained(runs_dir, _model_cache):
    """``trained(task)``: the path of a finished run of that task, trained on first use."""
    made = {}

    def get(task: str):
        if task not in made:
            preset, extra = TASKS[task]
            config = RunConfig.preset(preset).update({**QUICK, **extra, "runs_dir": str(runs_dir)})
            with pytest.MonkeyPatch.context() as env:
                env.setenv("FTKIT_CACHE", _model_cache)
                env.setenv("HF_HUB_OFFLINE", "1")
                record = RunStore(runs_dir).create(config)
                summary = train(config, record.path)
            assert summary["status"] == "finished", summary.get("reason")
            made[task] = record.path
        return made[task]

    return get


# ---- generation: domain, chat, creative, translation ---------------------------------------------


@pytest.mark.parametrize("task", ["domain", "chat", "creative", "translation"])
def test_generation_reproduces_the_runs_own_samples(trained, task):
    path = trained(task)
    predictor = Predictor(path)
    assert predictor.kind == "generation"
    options = predictor.config.task_options
    events = [json.loads(line) for line in (path / "events.jsonl").read_text().splitlines()]
    samples = [e for e in events if e["type"] == "sample"][-1]["samples"]
    assert samples
    for i, sample in enumerate(samples):
        if task == "translation":  # its samples decode greedily
            result = predictor.predict(sample["prompt"], max_new_tokens=options.max_new_tokens)
        else:  # sample i is generated with seed + i (creative samples at temperature 0.8)
            result = predictor.predict(sample["prompt"], max_new_tokens=options.max_new_tokens,
                                       temperature=options.temperature, seed=predictor.config.training.seed + i)
        assert isinstance(result, Generation)
        assert result.text == sample["output"], (task, sample["prompt"])


@pytest.mark.parametrize("task", ["domain", "chat", "creative", "translation"])
def test_generation_is_deterministic_at_temperature_zero_and_per_seed(trained, task):
    predictor = Predictor(trained(task))
    prompt = PROMPTS[task]
    greedy = predictor.predict(prompt, temperature=0, max_new_tokens=12)
    assert greedy.text.strip(), "a trained model writes something"
    assert predictor.predict(prompt, temperature=0, max_new_tokens=12) == greedy
    assert predictor.predict(prompt, temperature=0, max_new_tokens=12, seed=99) == greedy  # greedy ignores the seed
    sampled = predictor.predict(prompt, temperature=1.5, max_new_tokens=12, seed=3)
    assert predictor.predict(prompt, temperature=1.5, max_new_tokens=12, seed=3) == sampled
    others = {predictor.predict(prompt, temperature=1.5, max_new_tokens=12, seed=s).text for s in range(4, 8)}
    assert len(others | {sampled.text}) > 1, "different seeds never changed a sample at temperature 1.5"
    assert len(predictor.predict(prompt, temperature=0, max_new_tokens=1).text.split()) <= 1


def test_chat_takes_a_message_or_a_conversation(trained):
    predictor = Predictor(trained("chat"))
    question = PROMPTS["chat"]
    one = predictor.predict(question, max_new_tokens=8)
    assert predictor.predict([{"role": "user", "content": question}], max_new_tokens=8) == one
    longer = [{"role": "user", "content": "Hello!"},
              {"role": "assistant", "content": "Hello! Ask me anything about the Lumen Isles."},
              {"role": "user", "content": question}]
    assert isinstance(predictor.predict(longer, max_new_tokens=8), Generation)
    with pytest.raises(PredictError, match="text: a conversation is a list of"):
        predictor.predict([{"role": "robot", "content": "hi"}])


# ---- classification, NER, QA ------------------------------------------------------------------------


def test_classification_gives_a_label_and_probabilities(trained):
    predictor = Predictor(trained("classification"))
    assert predictor.kind == "classification"
    positive = predictor.predict("This blender is excellent and well made. Highly recommended.")
    negative = predictor.predict("The toaster is awful and broken. I am sending it back.")
    for result in (positive, negative):
        assert isinstance(result, Classification)
        assert set(result.probabilities) == {"negative", "positive"}
        assert math.isclose(sum(result.probabilities.values()), 1.0, abs_tol=1e-5)
        assert result.label == max(result.probabilities, key=result.probabilities.get)
    assert positive.label == "positive" and negative.label == "negative", (positive, negative)
    base = Predictor.base(predictor.config).predict("This blender is excellent and well made. Highly recommended.")
    assert set(base.probabilities) == {"negative", "positive"}
    assert base.probabilities["positive"] < positive.probabilities["positive"], "tuning did nothing"


def test_split_words_keeps_character_offsets():
    text = "Ada  went to Rio de Janeiro, didn't she?"
    words = split_words(text)
    assert [w for w, _, _ in words] == ["Ada", "went", "to", "Rio", "de", "Janeiro", ",", "didn't", "she", "?"]
    assert all(text[start:end] == word for word, start, end in words)


def test_ner_entities_slice_the_input(trained):
    predictor = Predictor(trained("ner"))
    assert predictor.kind == "ner"
    text = "Yesterday Ada Novak met  Tomas Silva at the Helix Labs office in Lisbon."  # glued full stop, two spaces
    result = predictor.predict(text)
    assert isinstance(result, Entities) and result.entities
    for e in result.entities:
        assert text[e.start:e.end] == e.text
        assert e.label in {"PER", "ORG", "LOC"}
        assert 0.0 < e.score <= 1.0
    spans = sorted((e.start, e.end) for e in result.entities)
    assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), "entities overlap"
    labels = {e.label for e in result.entities}
    assert "PER" in labels, result  # the commonest type, learned first
    assert not any(e.text in ("met", "at", "the", "office", "in") for e in result.entities), result
    plain = "it rained , and nobody came ."
    assert all(plain[e.start:e.end] == e.text for e in predictor.predict(plain).entities)


def test_qa_answer_is_a_span_of_the_context_in_every_input_form(trained):
    predictor = Predictor(trained("qa"))
    assert predictor.kind == "qa"
    result = predictor.predict(QA)
    assert isinstance(result, Answer)
    context = QA["context"]
    assert result.answer and context[result.start:result.end] == result.answer
    assert 0.0 < result.score <= 1.0
    assert predictor.predict(QA["question"], context=context) == result
    assert predictor.predict(f"{QA['question']} ||| {context}") == result
    # a context longer than one window (max_seq_length 64): the answer still comes back as a span of it
    long = " ".join([context] + ["He also kept bees and wrote letters to the harbour office."] * 12)
    far = predictor.predict(QA["question"], context=long)
    assert far.answer and long[far.start:far.end] == far.answer


def test_bad_input_names_what_to_pass(trained):
    qa = Predictor(trained("qa"))
    with pytest.raises(PredictError, match=r"^context: .*context=.*\|\|\|"):
        qa.predict("Where was Mara Quill born?")
    with pytest.raises(PredictError, match="^question: "):
        qa.predict({"context": QA["context"]})
    with pytest.raises(PredictError, match="^answer: not a QA input field"):
        qa.predict({**QA, "answer": "Lowmere"})
    classifier = Predictor(trained("classification"))
    with pytest.raises(PredictError, match=r"^temperature: not an option for a classification run \(it takes no options\)"):
        classifier.predict("fine", temperature=0.5)
    with pytest.raises(PredictError, match="^text: empty"):
        classifier.predict("   ")
    with pytest.raises(PredictError, match="^text: expected a string"):
        classifier.predict(["a", "list"])
    generator = Predictor(trained("domain"))
    with pytest.raises(PredictError, match="^max_new_tokens: must be between 1 and 4096, got 0"):
        generator.predict("x", max_new_tokens=0)
    with pytest.raises(PredictError, match="^temperature: expected a number"):
        generator.predict("x", temperature="hot")
    with pytest.raises(PredictError, match="^context: not an option for a domain run"):
        generator.predict("x", context="y")


# ---- runs, cache, controller, CLI -------------------------------------------------------------------


def test_a_run_keeps_its_labels_and_predicts_without_its_data(trained, tmp_path):
    import shutil

    source = trained("classification")
    assert json.loads((source / "labels.json").read_text()) == {"labels": ["negative", "positive"]}
    text = "This blender is excellent and well made. Highly recommended."
    expected = Predictor(source).predict(text)
    moved = tmp_path / source.name
    shutil.copytree(source, moved)
    config = json.loads((moved / "config.json").read_text())
    config["data"]["source"] = str(tmp_path / "gone.jsonl")  # the training data is no longer there
    (moved / "config.json").write_text(json.dumps(config))
    assert Predictor(moved).predict(text) == expected
    older = tmp_path / "older" / source.name  # a run folder from before labels.json: its data says them
    shutil.copytree(source, older)
    (older / "labels.json").unlink()
    assert Predictor(older).predict(text) == expected


def test_a_run_without_a_saved_model_says_so(runs_dir):
    record = RunStore(runs_dir).create(RunConfig.preset("demo"))
    predictor = Predictor(record.path)  # reading the config is enough to build it
    assert predictor.task == "classification"
    with pytest.raises(PredictError, match="has no saved model .*status: created"):
        predictor.predict("fine")
    with pytest.raises(PredictError, match="no run 'no-such-run'"):
        Predictor("no-such-run", runs_dir=str(runs_dir))


def test_models_load_once_and_run_predict_uses_the_cache(trained, runs_dir):
    path = trained("classification")
    first = Predictor(path)
    first.predict("fine")
    started = time.perf_counter()
    again = Predictor(path.name, runs_dir=str(runs_dir))  # a run id this time
    assert again._loaded() is first._loaded()
    result = again.predict("This kettle is superb.")
    assert time.perf_counter() - started < 5.0
    run = Controller(runs_dir=str(runs_dir)).get(path.name)
    assert run.predict("This kettle is superb.") == result


def test_cli_predict(trained, runs_dir, capsys):
    path = trained("classification")
    assert main(["predict", path.name, "This kettle is superb.", "--runs-dir", str(runs_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["run"] == path.name and out["task"] == "classification" and out["kind"] == "classification"
    assert out["label"] in out["probabilities"]

    chat = trained("chat")
    assert main(["predict", chat.name, PROMPTS["chat"], "--max-new-tokens", "6", "--temperature", "0",
                 "--runs-dir", str(runs_dir)]) == 0
    assert capsys.readouterr().out.strip() == Predictor(chat).predict(PROMPTS["chat"], max_new_tokens=6).text

    qa = trained("qa")
    assert main(["predict", qa.name, QA["question"], "--context", QA["context"], "--runs-dir", str(runs_dir),
                 "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert QA["context"][answer["start"]:answer["end"]] == answer["answer"]

    assert main(["predict", "no-such-run", "text", "--runs-dir", str(runs_dir)]) == 2
    assert "no run 'no-such-run'" in capsys.readouterr().err
    assert main(["predict", qa.name, QA["question"], "--runs-dir", str(runs_dir)]) == 2
    assert "--context TEXT" in capsys.readouterr().err
    assert main(["predict", path.name, "fine", "--temperature", "0.7", "--runs-dir", str(runs_dir)]) == 2
    assert "temperature: not an option" in capsys.readouterr().err
