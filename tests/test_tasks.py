"""Every task: its metric on hand-made answers, a short run on its built-in data, user files, the preview."""
import json
import math

import pytest

from ftkit.config import RunConfig
from ftkit.data import load_rows, preview
from ftkit.engine.train import train
from ftkit.errors import ConfigError
from ftkit.store import RunStore
from ftkit.tasks import TaskContext, tasks


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from a second intra-op thread, and on a shared runner it can cost 10x."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---- (a) metrics on examples with known answers -------------------------------------------


def check_classification():
    from ftkit.tasks.classification import scores

    assert scores([0, 1, 1, 0], [0, 1, 1, 0]) == {"accuracy": 1.0, "f1": 1.0}
    partial = scores([0, 0, 0, 0], [0, 0, 1, 1])
    assert partial["accuracy"] == 0.5
    assert partial["f1"] == pytest.approx((2 / 3 + 0) / 2)  # class 0: p=1/2 r=1; class 1: 0


def check_ner():
    from ftkit.tasks.ner import align, scores

    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    perfect = scores(gold, gold)
    assert perfect["f1"] == perfect["precision"] == perfect["recall"] == 1.0
    # PER cut short (wrong span), LOC right, ORG missed: 1 of 2 predicted right, 1 of 3 found
    partial = scores([["B-PER", "O", "O", "B-LOC"], ["O", "O"]], gold)
    assert partial["precision"] == pytest.approx(0.5)
    assert partial["recall"] == pytest.approx(1 / 3)
    assert partial["f1"] == pytest.approx(2 * 0.5 * (1 / 3) / (0.5 + 1 / 3))
    # the first sub-token of each word carries the label, the rest and special tokens -100
    assert align([None, 0, 0, 1, 2, 2, 2, None], [3, 0, 5]) == [-100, 3, -100, 0, 5, -100, -100, -100]


def check_translation():
    from ftkit.tasks.translation import scores

    same = scores(["kaval na mareno amas ."], ["kaval na mareno amas ."])
    assert same["bleu"] == pytest.approx(100.0) and same["chrf"] == pytest.approx(100.0)
    assert scores(["xx yy zz ww"], ["kaval na mareno amas ."])["bleu"] == pytest.approx(0.0)


def check_qa():
    import numpy as np

    from ftkit.tasks.qa import answer_span, best_answers, normalize, scores, token_f1

    assert normalize("The  Silver Oar!") == "silver oar"
    assert normalize("an Apple, a day") == "apple day"
    assert token_f1("silver oar", "the Silver Oar.") == 1.0
    assert token_f1("silver bell", "silver oar") == pytest.approx(0.5)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0
    assert scores(["The Silver Oar", "1847", "Lowmere"], ["silver oar", "1874", "Port Lowmere"]) == pytest.approx(
        {"exact_match": 1 / 3, "f1": (1 + 0 + 2 / 3) / 3}
    )
    # the best valid span from logits, mapped back to characters
    context = "Mara was born in Port Ardent."
    offsets = [[None, None, (0, 4), (5, 8), (9, 13), (14, 16), (17, 21), (22, 28), (28, 29), None]]
    start = np.full((1, 10), -5.0)
    end = np.full((1, 10), -5.0)
    start[0, 0], end[0, 0] = 9.0, 9.0  # a question token: not a valid answer
    start[0, 6], end[0, 7] = 4.0, 4.0
    start[0, 7], end[0, 6] = 3.0, 3.0  # end before start: not valid
    assert best_answers(start, end, [0], offsets, [context], n_best=5, max_tokens=5) == ["Port Ardent"]
    assert answer_span({"context": context, "answer": {"text": ["Port"], "answer_start": [17]}}, 0) == ("Port", 17)
    with pytest.raises(ConfigError) as err:
        answer_span({"context": context, "answer": "Lowmere"}, 7)
    assert err.value.problems[0][0] == "data.columns.answer" and "row 8" in err.value.problems[0][1]


def check_perplexity():
    from ftkit.tasks._causal import perplexity

    assert perplexity(math.log(10.0))["perplexity"] == pytest.approx(10.0)
    assert perplexity(0.0)["perplexity"] == 1.0


def check_creative():
    from ftkit.tasks._causal import distinct_n

    check_perplexity()
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)  # ab, ba, ab
    assert distinct_n(["the fox runs", "the fox sleeps"], 2) == pytest.approx(3 / 4)
    assert distinct_n(["one"], 2) == 0.0


METRIC_CHECKS = {
    "classification": check_classification,
    "ner": check_ner,
    "translation": check_translation,
    "qa": check_qa,
    "domain": check_perplexity,
    "chat": check_perplexity,
    "creative": check_creative,
}


@pytest.mark.parametrize("name", tasks.names())
def test_metric_on_known_answers(name):
    assert name in METRIC_CHECKS, f"task {name} has no metric check here; add one"
    METRIC_CHECKS[name]()


@pytest.mark.parametrize("name", tasks.names())
def test_spec_and_builtin_data_are_complete_and_deterministic(name):
    spec = tasks.get(name)
    assert spec.metric in spec.metrics and spec.scenario and spec.title and spec.summary
    rows = spec.builtin()
    assert 200 <= len(rows) <= 5000
    assert rows == spec.builtin()
    assert all(set(row) == set(spec.columns) for row in rows)
    assert spec.options().model_dump() is not None  # defaults validate


# ---- (b) a short run on the built-in data of every task ------------------------------------

QUICK = {
    "training.max_steps": 16,
    "training.batch_size": 8,
    "training.max_seq_length": 64,
    "training.learning_rate": 2e-3,
    "training.logging_steps": 2,
    "training.eval_steps": 0,
    "data.max_eval_samples": 16,
}
#: per task: what makes 16 steps show learning (random-init tiny models train in full)
QUICK_TASK = {
    "classification": {"training.learning_rate": 5e-3},
    "ner": {"training.learning_rate": 5e-3},
    "qa": {"training.learning_rate": 5e-3, "training.max_seq_length": 96},
    "domain": {"method.name": "full"},
    "chat": {"method.name": "full"},
    "creative": {"method.name": "full", "task.creative.max_new_tokens": 12},
    "translation": {"method.name": "full", "task.translation.max_new_tokens": 24},
}


def run(config):
    record = RunStore().create(config)
    return record, train(config, record.path)


@pytest.mark.parametrize("name", tasks.names())
def test_task_trains_on_its_builtin_data(name):
    config = RunConfig().update({"task.name": name, **QUICK, **QUICK_TASK.get(name, {})})
    record, summary = run(config)
    assert summary["status"] == "finished", summary["reason"]
    assert summary["loss_last"] < summary["loss_first"]
    events = record.events()
    evals = [e for e in events if e["type"] == "eval"]
    spec = config.task_spec
    assert evals and spec.metric in evals[-1]["metrics"]
    assert all(math.isfinite(evals[-1]["metrics"][m]) for m in spec.metrics if m in evals[-1]["metrics"])
    if spec.model_kind == "causal_lm":
        samples = [e for e in events if e["type"] == "sample"]
        assert samples and all(isinstance(s["output"], str) for s in samples[-1]["samples"])
    if name == "creative":
        assert 0.0 <= evals[-1]["metrics"]["distinct_2"] <= 1.0


# ---- (c) chat: loss on assistant tokens only ---------------------------------------------


def test_chat_labels_only_assistant_tokens():
    from ftkit.models import load_builtin_tokenizer
    from ftkit.tasks.chat import encode_chat, prepare

    tok = load_builtin_tokenizer()
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is the capital of Corra?"},
        {"role": "assistant", "content": "The capital of Corra is Vell."},
        {"role": "user", "content": "Thanks!"},
        {"role": "assistant", "content": "You are welcome."},
    ]
    example = encode_chat(tok, messages, max_length=512)
    ids, labels = example["input_ids"], example["labels"]
    assert len(ids) == len(labels)
    assert tok.decode(ids) == tok.apply_chat_template(messages, tokenize=False)
    learned = [i for i, label in zip(ids, labels) if label != -100]
    assert all(label in (-100, i) for i, label in zip(ids, labels))
    assert tok.decode(learned) == "The capital of Corra is Vell.<|end|>You are welcome.<|end|>"
    masked = tok.decode([i for i, label in zip(ids, labels) if label == -100])
    assert "Be brief." in masked and "What is the capital" in masked and "Thanks!" in masked
    assert "Vell" not in masked and "<|assistant|>" in masked

    # through prepare: every example learns something, and never the prompt in front
    rows = tasks.get("chat").builtin()[:40]
    options = tasks.get("chat").options()
    data = prepare(TaskContext(tok, options, 128, rows[:30], rows[30:]))
    for example in data.train:
        assert example["labels"][0] == -100
        assert any(label != -100 for label in example["labels"])
    assert data.from_loss(math.log(4.0))["perplexity"] == pytest.approx(4.0)
    # a system prompt goes in front of conversations that have none, never learned
    options = options.model_copy(update={"system_prompt": "Be kind."})
    data = prepare(TaskContext(tok, options, 128, rows[:2], rows[2:4]))
    first = data.train[0]
    assert tok.decode(first["input_ids"]).startswith("<|system|>Be kind.<|end|>")
    assert "Be kind." not in tok.decode([i for i, y in zip(first["input_ids"], first["labels"]) if y != -100])


# ---- (d) user files with their own column names --------------------------------------------


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_user_jsonl_and_csv_with_mapped_columns(tmp_path):
    ner_rows = [{"words": r["tokens"], "labels": r["tags"], "id": i}
                for i, r in enumerate(tasks.get("ner").builtin()[:60])]
    jsonl = write_jsonl(tmp_path / "ner.jsonl", ner_rows)
    config = RunConfig().update({
        "task.name": "ner", "data.source": jsonl, "data.columns": {"tokens": "words", "tags": "labels"},
        "training.max_steps": 3, "training.batch_size": 8, "training.max_seq_length": 48,
        "training.eval_steps": 0, "training.logging_steps": 1,
    })
    train_rows, eval_rows = load_rows(config)
    assert len(train_rows) + len(eval_rows) == 60
    assert set(train_rows[0]) == {"tokens", "tags"}
    _, summary = run(config)
    assert summary["status"] == "finished", summary["reason"]
    assert "f1" in summary["metrics"]

    import csv

    path = tmp_path / "pairs.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["english", "veltic"])
        for r in tasks.get("translation").builtin()[:20]:
            writer.writerow([r["source"], r["target"]])
    config = RunConfig().update({
        "task.name": "translation", "data.source": str(path),
        "data.columns": {"source": "english", "target": "veltic"}, "data.eval_fraction": 0.25,
    })
    train_rows, eval_rows = load_rows(config)
    assert (len(train_rows), len(eval_rows)) == (15, 5)
    assert train_rows[0]["source"].endswith(" .") and set(train_rows[0]) == {"source", "target"}

    # a column the file lacks names the field to set
    bad = config.update({"data.columns": {"source": "english"}})
    with pytest.raises(ConfigError) as err:
        load_rows(bad)
    assert "data.columns.target" in [p for p, _ in err.value.problems]


def test_user_qa_file_with_an_answer_missing_from_its_context(tmp_path):
    rows = [{"q": "Where?", "passage": "It is in Lowmere.", "a": "Lowmere"},
            {"q": "When?", "passage": "It was in 1847.", "a": "1902"}] * 5
    source = write_jsonl(tmp_path / "qa.jsonl", rows)
    config = RunConfig().update({
        "task.name": "qa", "data.source": source,
        "data.columns": {"question": "q", "context": "passage", "answer": "a"},
        "training.max_steps": 2, "training.eval_steps": 0,
    })
    from ftkit.preflight import preflight

    with pytest.raises(ConfigError) as err:  # refused before a run folder exists, at the file's own line
        preflight(config)
    assert "qa.jsonl line 2: answer '1902' does not occur in its context" in str(err.value)
    _, summary = run(config)
    assert summary["status"] == "failed"
    assert "data.columns.answer" in summary["reason"] and "'1902'" in summary["reason"]


# ---- (e) the data preview ---------------------------------------------------------------


@pytest.mark.parametrize("name", tasks.names())
def test_preview_shows_rows_and_token_lengths(name):
    config = RunConfig().update({"task.name": name, "training.max_seq_length": 8})
    out = preview(config, rows=3)
    assert len(out["rows"]) == 3 and set(out["rows"][0]) == set(config.task_spec.columns)
    stats = out["token_lengths"]
    assert 0 < stats["min"] <= stats["median"] <= stats["p95"] <= stats["max"]
    assert stats["truncated"] == sum(n > 8 for n in out["lengths"]) > 0
    report = out["length_report"]  # what the run will say before training
    assert report["truncated"] + report["dropped"] == stats["truncated"]
    assert report["suggested_max_seq_length"] >= stats["p95"] and report["suggested_max_seq_length"] % 8 == 0
    assert out["num_train"] + out["num_eval"] == len(config.task_spec.builtin())
