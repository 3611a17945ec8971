"""User data as users have it: CoNLL, CSVs with spaced names and quoted commas, chat files with long
conversations; positions that are the file's own lines; nothing cut or dropped in silence; values the task
does not expect; defaults that follow the method; presets that do not leak into the user's data."""
import json

import pytest
import yaml

from ftkit.cli import main
from ftkit.config import RunConfig
from ftkit.data import check, length_report, load_rows, read_source
from ftkit.errors import ConfigError

# ---- files shaped like real users' ----------------------------------------------------

CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O
to TO B-VP O
boycott VB I-VP O
British JJ B-NP B-MISC
lamb NN I-NP O
. . O O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

BRUSSELS NNP B-NP B-LOC
1996-08-22 CD I-NP O

-DOCSTART- -X- -X- O

Ada NNP B-NP B-PER
Lovelace NNP I-NP I-PER
lived VBD B-VP O
in IN B-PP O
London NNP B-NP B-LOC
. . O O


"""

TOPICS_CSV = """Review Text , Topic

"Great battery, lasts two days",tech
"The striker scored twice, then left injured",sport
"New phone, same old charger",tech

"Parliament votes on the budget, again",politics
"Shares fell 3%, analysts said",business
"A multi-line
review, with a comma",tech
"The coach resigned, fans cheered",sport
"Election results, region by region",politics
"Quarterly profits rose, slightly",business
"Laptop fans are loud, but it is fast",tech
"Marathon record broken, in the rain",sport
"""


def _conversation(i: int, long: bool) -> dict:
    answer = ("Here is a detailed answer with many steps. " * (6 if long else 1)).strip()
    messages = [{"role": "system", "content": "You are a helpful support agent."}] if i % 3 == 0 else []
    pasted = " Here is the log it printed: " + "link down, retrying; " * 12 if i % 5 == 0 else ""
    messages += [{"role": "user", "content": f"Question {i}: how do I reset my router?{pasted}"},
                 {"role": "assistant", "content": answer}]
    if long:
        messages += [{"role": "user", "content": "And after that, what should I check? " * 3},
                     {"role": "assistant", "content": "Check the lights, then the cable, then call us. " * 4}]
    return {"messages": messages}


@pytest.fixture
def chats(tmp_path):
    path = tmp_path / "support_chats.jsonl"
    path.write_text("".join(json.dumps(_conversation(i, long=i % 3 != 2)) + "\n" for i in range(60)))
    return str(path)


def test_conll_file_loads_for_ner_with_docstart_blank_lines_and_column_choice(tmp_path):
    path = tmp_path / "train.conll"
    path.write_text(CONLL)
    config = RunConfig().update({"task.name": "ner", "data.source": str(path), "data.eval_fraction": 0.25})
    train, evals = load_rows(config)
    rows = sorted(train + evals, key=lambda r: r.lines[0])
    assert [len(r["tokens"]) for r in rows] == [9, 2, 2, 6]
    assert rows[0]["tokens"][:3] == ["EU", "rejects", "German"] and rows[0]["tags"][:3] == ["B-ORG", "O", "B-MISC"]
    assert rows[3].where == "train.conll line 21"  # the sentence's own first line, after a -DOCSTART-
    # the third column (chunk tags, also BIO) chosen by number; the same file as .txt reads the same for ner
    chunks = load_rows(config.set("data.columns", {"tags": 3}))
    assert sorted(r["tags"][0] for r in chunks[0] + chunks[1])[0] == "B-NP"
    txt = tmp_path / "train.txt"
    txt.write_text(CONLL)
    assert len(read_source(str(txt), task="ner")) == 4
    # .txt for another task: the message says what that task reads
    with pytest.raises(ConfigError) as err:
        load_rows(RunConfig().set("data.source", str(txt)))
    assert "task classification reads a .jsonl/.json/.csv" in str(err.value) and "text:" in str(err.value)


def test_a_bad_tag_names_the_conll_line_of_the_word(tmp_path):
    path = tmp_path / "train.conll"
    path.write_text(CONLL.replace("Lovelace NNP I-NP I-PER", "Lovelace NNP I-NP PER"))
    config = RunConfig().update({"task.name": "ner", "data.source": str(path)})
    with pytest.raises(ConfigError) as err:
        load_rows(config)
    assert err.value.problems == [("data.columns.tags", "train.conll line 22: tag 'PER' (word 'Lovelace') is not "
                                   "BIO; write O outside entities, B-PER on an entity's first word and I-PER on the next")]


def test_csv_with_spaced_names_blank_lines_and_quoted_commas(tmp_path):
    path = tmp_path / "topics.csv"
    path.write_text(TOPICS_CSV)
    config = RunConfig().update({"data.source": str(path), "data.columns": {"text": "Review Text", "label": "Topic"}})
    train, evals = load_rows(config)
    rows = sorted(train + evals, key=lambda r: int(r.where.split()[-1]))
    assert len(rows) == 11
    assert rows[0] == {"text": "Great battery, lasts two days", "label": "tech"}
    assert rows[5]["text"] == "A multi-line\nreview, with a comma" and rows[5].where == "topics.csv line 9"
    assert rows[6].where == "topics.csv line 11"  # lines counted in the file, the quoted newline included


def test_positions_are_the_files_own_lines_not_rows_after_the_shuffle(tmp_path, chats):
    lines = open(chats).read().splitlines()
    bad = json.loads(lines[8])
    bad["messages"][-1]["role"] = "bot"
    lines[8] = json.dumps(bad)
    lines.insert(2, "")  # a blank line moves everything after it one line down
    path = tmp_path / "chats.jsonl"
    path.write_text("\n".join(lines) + "\n")
    config = RunConfig().update({"task.name": "chat", "data.source": str(path)})
    with pytest.raises(ConfigError) as err:
        load_rows(config)
    (field, message), = err.value.problems
    assert field == "data.columns.messages"
    assert message.startswith("chats.jsonl line 10: message ") and "has role 'bot'" in message


def test_broken_json_says_the_line_not_the_byte(tmp_path):
    path = tmp_path / "reviews.json"
    path.write_text('[\n  {"text": "fine", "label": "a"},\n  {"text": "bad" "label": "b"}\n]\n')
    with pytest.raises(ConfigError) as err:
        read_source(str(path))
    assert "reviews.json line 3: not valid JSON (Expecting ',' delimiter" in str(err.value)
    path.write_text('[\n  {"text": "fine", "label": "a"},\n  {"text": null,\n   "label": "b"}\n]\n')
    with pytest.raises(ConfigError) as err:
        load_rows(RunConfig().set("data.source", str(path)))
    assert err.value.problems == [("data.columns.text", "reviews.json line 3: text is empty (null); fill it in or "
                                   "remove the row")]


def test_a_label_seen_once_is_warned_with_its_line(tmp_path):
    path = tmp_path / "topics.csv"
    path.write_text(TOPICS_CSV.replace('"Shares fell 3%, analysts said",business',
                                       '"Shares fell 3%, analysts said",busines') + '"Markets calm, for now",business\n')
    config = RunConfig().update({"data.source": str(path), "data.columns": {"text": "Review Text", "label": "Topic"}})
    assert check(config) == ["topics.csv line 8: label 'busines' appears only once in 12 rows (a typo of "
                             "'business'?); it becomes a class of its own"]


# ---- nothing cut or dropped in silence ------------------------------------------------------


def test_long_conversations_cut_or_dropped_are_counted_and_a_length_suggested(chats):
    from ftkit.engine.loading import load_tokenizer

    config = RunConfig().update({"task.name": "chat", "data.source": chats, "training.max_seq_length": 64})
    tokenizer = load_tokenizer(config)
    train, _ = load_rows(config)
    report = length_report(config, tokenizer, train)
    assert report["rows"] == len(train) == 54
    assert report["dropped"] > 0 and report["truncated"] > 0 and report["warn"]
    assert report["message"].startswith("warning: training rows: 54, ")
    assert f"max_seq_length {report['suggested_max_seq_length']} would keep 95 % of them whole" in report["message"]
    suggested = config.set("training.max_seq_length", report["suggested_max_seq_length"])
    again = length_report(suggested, tokenizer, train)
    assert again["truncated"] + again["dropped"] <= 0.05 * len(train) and not again["dropped"]

    # what the engine hands the run: log lines and the counts for the summary
    from ftkit.engine.build import build

    built = build(config.update({"training.max_steps": 1}))
    assert built.data_summary()["train"]["dropped"] == report["dropped"]
    assert any("dropped" in line for line in built.data_messages())


def test_a_run_says_what_was_cut_before_training_and_keeps_it_in_its_summary(chats, capsys):
    from ftkit.store import RunStore

    code = main(["train", "--set", "task.name=chat", "--set", f"data.source={chats}",
                 "--set", "training.max_seq_length=64", "--set", "training.max_steps=1", "--quiet"])
    assert code == 0
    (record,) = RunStore().runs()
    warned = [e["message"] for e in record.events() if e["type"] == "log" and e.get("level") == "warning"]
    assert any("dropped" in line and "max_seq_length" in line for line in warned)
    data = record.summary["data"]
    assert data["train"]["rows"] == 54 and data["train"]["dropped"] > 0
    assert data["train"]["suggested_max_seq_length"] > 64


# ---- defaults that follow the method ------------------------------------------------------


def test_an_unset_learning_rate_follows_the_method_in_the_api_and_the_cli(tmp_path, capsys):
    lora = RunConfig()
    full = lora.set("method.name", "full")
    assert (lora.training.learning_rate, full.training.learning_rate) == (2e-4, 2e-5)
    assert full.origin("training.learning_rate") == "method" and full.origin("method.name") == "user"
    assert full.set("method.name", "ia3").training.learning_rate == 1e-2
    mine = lora.set("training.learning_rate", 1e-3).set("method.name", "full")
    assert mine.training.learning_rate == 1e-3 and mine.origin("training.learning_rate") == "user"
    # a preset's learning rate belongs to the preset's method
    demo = RunConfig.preset("demo")
    assert demo.origin("training.learning_rate") == "preset"
    assert demo.set("method.name", "full").training.learning_rate == 2e-5
    # the same from a YAML file and from a plain constructor
    path = tmp_path / "full.yaml"
    path.write_text("method:\n  name: full\n")
    assert RunConfig.from_yaml(path).training.learning_rate == 2e-5
    assert RunConfig(method={"name": "full"}).training.learning_rate == 2e-5
    assert main(["config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "  learning_rate: 2.0e-05  # method\n" in out and "  name: full  # user\n" in out
    assert "  batch_size: 8  # default\n" in out
    assert yaml.safe_load(out)["training"]["learning_rate"] == 2e-5


def test_numbers_written_as_text_read_alike():
    config = RunConfig().update({"training.max_steps": "1e3", "training.learning_rate": "2e-5"})
    assert config.training.max_steps == 1000 and config.training.learning_rate == 2e-5
    assert yaml.safe_load("steps: 1e3")["steps"] == "1e3"  # what YAML hands us


# ---- presets do not leak into the user's data ----------------------------------------------


def test_preset_options_for_builtin_data_are_reset_on_user_data(chats, capsys):
    preset = RunConfig.preset("chat-demo")
    assert preset.task.chat.system_prompt and preset.task.chat.sample_prompts
    mine = preset.set("data.source", chats)
    assert mine.task.chat.system_prompt is None and mine.task.chat.sample_prompts == []
    assert mine.origin("task.chat.system_prompt") == "reset"
    kept = preset.update({"data.source": chats, "task.chat.system_prompt": "Be brief."})
    assert kept.task.chat.system_prompt == "Be brief." and kept.origin("task.chat.system_prompt") == "user"
    assert main(["config", "--preset", "chat-demo", "--set", f"data.source={chats}"]) == 0
    assert "system_prompt: null  # reset: the preset's value fits only the built-in data" in capsys.readouterr().out


def test_the_form_follows_the_method_and_shows_the_suggested_length(chats):
    from ftkit.widgets.form import ConfigForm

    form = ConfigForm(preset="demo")
    assert form.config.training.learning_rate == 0.002  # the preset's, for its LoRA
    form.set("method.name", "full")
    assert form.config.training.learning_rate == 2e-5 and form.get("training.learning_rate") == 2e-5
    assert form.fields["training.learning_rate"].input.value == 2e-5  # shown, not only used
    form.set("training.learning_rate", 1e-4)
    form.set("method.name", "lora")
    assert form.config.training.learning_rate == 1e-4  # the user's own value stays
    form.set("method.dora.r", 4)  # options of a method not chosen: kept aside, not an error
    assert form.valid

    chat = ConfigForm(preset="chat-demo")
    chat.set("data.source", chats)
    assert chat.config.task.chat.system_prompt is None
    assert "task.chat.system_prompt: cleared" in chat.message.value

    report = {"rows": 54, "max_seq_length": 64, "truncated": 29, "dropped": 11, "suggested_max_seq_length": 424,
              "warn": True}
    chat.show_length(report)
    assert "suggested: 424" in chat.length_hint.value and "11 dropped" in chat.length_hint.value
    chat.use_length.click()
    assert chat.config.training.max_seq_length == 424
