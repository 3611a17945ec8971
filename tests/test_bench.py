"""The benchmark scripts run end to end at their smallest settings (their figures are not asserted: they are
timings on whatever machine runs the tests), and what they compare is the same work on both sides."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def bench(script: str, *args: str, timeout: float = 600) -> str:
    done = subprocess.run([sys.executable, str(REPO / "bench" / script), *args], capture_output=True, text=True,
                          cwd=str(REPO), timeout=timeout)
    assert done.returncode == 0, f"{script} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    assert "command: python bench/" + script in done.stdout and "machine: " in done.stdout
    return done.stdout


def test_overhead_runs_both_modes_on_the_same_work(tmp_path):
    out = tmp_path / "overhead.json"
    text = bench("overhead.py", "--steps", "2", "--repeats", "1", "--warmup", "0", "--eval-rows", "4",
                 "--json", str(out))
    figures = json.loads(out.read_text())["figures"]
    assert set(figures) == {"thread", "process"} and "| thread |" in text and "| process |" in text
    for mode in figures.values():
        assert mode["wall"]["ratio_median"] > 0 and mode["cpu"]["ratio_median"] > 0
        # same model, rows, steps and seed on both sides: the final evaluation agrees
        assert mode["eval_loss"]["ftkit"] == pytest.approx(mode["eval_loss"]["plain"], abs=1e-3)


def test_dashboard_measures_bytes_cpu_and_a_real_run(tmp_path):
    out = tmp_path / "dashboard.json"
    text = bench("dashboard.py", "--steps", "300", "--every", "10", "--train-steps", "3", "--rounds", "1",
                 "--json", str(out))
    figures = json.loads(out.read_text())
    rows = {r["step"]: r for r in figures["flatness"]}
    assert set(rows) == {10}
    assert 0 < rows[10]["bytes_mean"] < 20_000 and rows[10]["cpu_us_per_event"] > 0
    assert figures["static"]["cpu_us_per_event"] > 0  # the static plot path is measured too
    real = figures["real"]
    assert real["updates"][0] >= 1 and real["bytes"][0] > 0 and real["ui_cpu_s"][0] > 0
    assert "dashboard CPU / training time" in text


def test_methods_table_has_a_peak_memory_column(tmp_path):
    table = tmp_path / "methods.md"
    bench("methods.py", "--only", "lora", "--task", "domain", "--steps", "2", "--out", str(table))
    header, _, row = table.read_text().splitlines()
    assert header.split("|")[-2].strip().startswith("peak MB")
    cells = [c.strip() for c in row.split("|")[1:-1]]
    assert cells[0] == "lora" and float(cells[-1].replace(",", "")) > 0


def test_zero_runs_two_ranks_and_prints_the_paper_formulas(tmp_path):
    out = tmp_path / "zero.json"
    text = bench("zero.py", "--only", "2", "--steps", "1", "--json", str(out))
    data = json.loads(out.read_text())
    row = data["rows"][0]
    assert row["status"] == "finished" and len(row["rank_peak_mb"]) == 2 and all(m > 0 for m in row["rank_peak_mb"])
    psi = data["params"]
    assert row["paper_mb"] == pytest.approx((2 + 14 / 2) * psi / 2**20)  # ZeRO-2: 2 + 14/N bytes per parameter
    assert "4Ψ + 12Ψ/N" in text


def test_gpu_script_runs_on_a_cpu_with_a_tiny_model(tmp_path):
    out = tmp_path / "gpu.json"
    text = bench("gpu.py", "--device", "cpu", "--tiny", "--steps", "3", "--skip", "1", "--methods", "lora",
                 "--variants", "packing,liger", "--variant-methods", "lora", "--json", str(out))
    data = json.loads(out.read_text())
    assert data["methods"]["lora"]["ftkit"][0]["ok"] and data["methods"]["lora"]["plain"][0]["ok"]
    assert "| lora | liger | skipped |" in text  # no CUDA: said, not hidden
    assert "lora:liger" not in data["variants"]
    assert data["variants"]["lora:baseline"][0]["ok"] and data["variants"]["lora:packing"][0]["ok"]


def test_plain_script_packs_texts_into_full_blocks(tmp_path):
    sys.path.insert(0, str(REPO / "bench"))
    import plain_peft

    from ftkit.models import resolve

    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"text": f"Species {i}: a plant of the Tarn Uplands."}) + "\n"
                             for i in range(64)))
    common = ["--model", resolve("builtin:tiny-llama"), "--train", str(train), "--steps", "2", "--batch-size", "2",
              "--max-length", "32", "--logging-steps", "1"]
    packed = plain_peft.main(common + ["--out", str(tmp_path / "packed"), "--packing"])
    padded = plain_peft.main(common + ["--out", str(tmp_path / "padded")])
    # every batch is two full 32-token blocks (the loader builds one batch ahead, so 3 batches are counted)
    assert packed["tokens"] == 3 * 2 * 32 and packed["steps"] == 2
    assert padded["tokens"] < packed["tokens"] and packed["loss_last"] is not None


def test_memory_prints_the_published_table():
    text = bench("memory.py", "--published")
    assert "| lora-rank32 |" in text and "median |error|" in text and "wrong \"does not fit\": none" in text
