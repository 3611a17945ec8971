"""Training plans from config.json alone: Phi-3-mini QLoRA without its weights."""
from ftkit.cli import main
from ftkit.config import RunConfig
from ftkit.plan import plan


def test_phi3_mini_qlora_plan_counts_lora_exactly_without_weights():
    p = plan(RunConfig.preset("phi3-mini-qlora"))
    assert p["model_type"] == "phi3" and p["layers"] == 32 and p["bits"] == 4
    assert 3.80e9 < p["base_params"] < 3.85e9  # Phi-3-mini's 3.8B
    # LoRA r=16 on every linear layer: r * (d_in + d_out) per module, 32 layers
    h, i, r = 3072, 8192, 16
    per_layer = r * ((h + 3 * h) + (h + h) + (h + 2 * i) + (i + h))  # qkv, o, gate_up, down
    assert p["trainable_params"] == 32 * per_layer
    assert p["adapted_modules"] == ["down_proj", "gate_up_proj", "o_proj", "qkv_proj"]
    assert p["effective_batch"] == 16


def test_plan_cli_prints_the_plan(capsys):
    assert main(["plan", "--preset", "phi3-mini-qlora", "--set", "method.qlora.r=8"]) == 0
    out = capsys.readouterr().out
    assert "3.834B total, 12.58M trainable" in out
