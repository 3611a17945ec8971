"""The advisor: the scenario table as data, ranked configurations that fit, and claims checked by the numbers."""
from __future__ import annotations

import json

import pytest

from ftkit.advisor import SCENARIOS, TECHNIQUES, advise, scenario_of
from ftkit.tasks import tasks

#: the design document's table, row by row (Y = suited, N = not)
TABLE = """
adapt a pre-trained LLM to a task or domain | Y | Y | Y | Y | Y | Y
NLP tasks: text classification, NER, machine translation | Y | Y | Y | Y | Y | Y
question answering | Y | Y | Y | Y | Y | Y
human-like chatbot responses | Y | Y | Y | Y | Y | Y
music, art and other creative generation | Y | Y | Y | Y | Y | Y
reduce compute and financial cost | Y | Y | N | Y | Y | N
reduce memory use | N | Y | N | Y | Y | Y
fewer trainable parameters | N | Y | Y | N | N | Y
memory-efficient data parallelism over all GPUs' memory | N | N | N | Y | Y | Y
"""


def test_table_is_kept_as_the_document_states_it():
    rows = [[c.strip() for c in line.split("|")] for line in TABLE.strip().splitlines()]
    assert [s.text for s in SCENARIOS] == [r[0] for r in rows]
    for scenario, row in zip(SCENARIOS, rows):
        assert [scenario.marks[t] for t in TECHNIQUES] == [c == "Y" for c in row[1:]], scenario.text


def test_every_task_names_a_row_of_the_scenario_table():
    texts = {s.text for s in SCENARIOS}
    for task in tasks:
        assert task.scenario in texts, task.name
        assert scenario_of(task.name).text == task.scenario


@pytest.fixture(scope="module")
def mini_chat():
    return advise("chat", "microsoft/Phi-3-mini-4k-instruct", gpus=1, gpu_memory_gb=24)


@pytest.fixture(scope="module")
def medium_domain():
    return advise("domain", "microsoft/Phi-3-medium-4k-instruct", gpus=4, gpu_memory_gb=80)


def test_phi3_mini_chat_on_one_24gb_gpu(mini_chat):
    a = mini_chat
    assert a.ranked and all(o.fits for o in a.ranked)
    assert all(o.estimate.peak_gb <= 24 for o in a.ranked)
    methods = [o.method for o in a.ranked]
    assert "full" not in methods and {"lora", "qlora", "dora"} <= set(methods)
    full = next(o for o in a.rejected if o.method == "full")
    assert full.estimate.peak_gb > 24
    # QLoRA needs the least memory of the LoRA family; DoRA trains a little more than LoRA
    by = {o.method: o for o in a.ranked}
    assert by["qlora"].estimate.peak_gb < by["lora"].estimate.peak_gb
    assert by["dora"].estimate.trainable_params > by["lora"].estimate.trainable_params
    assert by["lora"].line().startswith("LoRA") and "GiB per GPU" in by["lora"].line()


def test_claims_that_do_not_hold_are_flagged(mini_chat):
    flagged = {(c.scenario, c.technique) for c in mini_chat.checks if not c.holds}
    assert ("fewer trainable parameters", "LoRA") in flagged  # LoRA does cut trainable parameters
    assert ("reduce memory use", "LoRA") in flagged  # and memory, against full fine-tuning
    held = {(c.scenario, c.technique) for c in mini_chat.checks if c.holds}
    assert ("reduce memory use", "QLoRA") in held and ("fewer trainable parameters", "QLoRA") in held
    assert ("fewer trainable parameters", "ZeRO") in held  # ZeRO trains every weight: its N holds


def test_phi3_medium_domain_on_four_80gb_gpus(medium_domain):
    a = medium_domain
    assert a.scenario.key == "domain"
    best = a.best
    assert best.method == "full" and best.zero_stage == 3  # full fine-tuning fits once ZeRO-3 shards it
    plain = next(o for o in a.rejected if o.method == "full" and o.zero_stage is None)
    assert plain.estimate.peak_gb > 80 > best.estimate.peak_gb
    zero = {(c.scenario, c.technique): c for c in a.checks}
    assert zero[("memory-efficient data parallelism over all GPUs' memory", "ZeRO")].holds
    assert zero[("reduce memory use", "ZeRO")].holds


def test_ranking_puts_quality_first_then_speed(medium_domain):
    tiers = [o.method for o in medium_domain.ranked]
    assert tiers.index("full") < tiers.index("lora") < tiers.index("qlora") < tiers.index("ia3")


def test_advice_text_and_dict(medium_domain):
    text = medium_domain.text()
    assert "fits, best first" in text and "does not fit" in text and "ZeRO-3" in text
    data = json.loads(json.dumps(medium_domain.to_dict()))
    assert data["ranked"][0]["fits"] and data["scenario"]["marks"]["ZeRO"] is True


def test_cli_advise_json(capsys):
    from ftkit.cli import main

    assert main(["advise", "--task", "chat", "--model", "microsoft/Phi-3-mini-4k-instruct", "--gpus", "1",
                 "--gpu-memory", "24", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["gpus"] == 1 and data["ranked"] and all(r["peak_gb"] <= 24 for r in data["ranked"])
    assert any(not c["holds"] and c["technique"] == "LoRA" for c in data["checks"])


def test_cli_advise_unknown_task(capsys):
    from ftkit.cli import main

    assert main(["advise", "--task", "chatt", "--model", "microsoft/Phi-3-mini-4k-instruct"]) == 2
    assert "chat" in capsys.readouterr().err


def test_advisor_widget_fills_in_the_answer():
    pytest.importorskip("ipywidgets")
    from ftkit.widgets.advisor import AdvisorWidget

    widget = AdvisorWidget(gpu_memory_gb=24)
    widget.button.click()
    assert widget.advice is not None and "QLoRA" in widget.output.value and "does not fit" in widget.output.value
    widget.model.value = "no/such-model"
    widget.button.click()
    assert widget.advice is None and "no config.json" in widget.output.value


def test_advisor_widget_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom ftkit.widgets.advisor import AdvisorWidget\nw = AdvisorWidget()\nw.refresh()\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("False")
