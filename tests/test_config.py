"""RunConfig: defaults, round trips, set(), presets, metadata, and bad configs rejected by field."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ftkit.cli import main
from ftkit.config import RunConfig, list_presets
from ftkit.errors import ConfigError
from ftkit.methods import methods
from ftkit.tasks import tasks

BAD = sorted(Path(__file__).parent.joinpath("bad_configs").glob("*.yaml"))


def expectation(path: Path) -> tuple[str, str]:
    head = path.read_text().splitlines()[0]
    field, message = head.split("expect:", 1)[1].split("|")
    return field.strip(), message.strip()


def test_defaults_are_valid_and_round_trip_through_yaml_and_json(tmp_path):
    config = RunConfig().update({"method.name": "dora", "method.dora.r": 4, "training.max_steps": 7})
    config.to_yaml(tmp_path / "c.yaml")
    config.to_json(tmp_path / "c.json")
    assert RunConfig.from_yaml(tmp_path / "c.yaml") == config
    assert RunConfig.from_json(tmp_path / "c.json") == config
    saved = yaml.safe_load((tmp_path / "c.yaml").read_text())
    assert set(saved["method"]) == {"name", "dora"}, "only the chosen method's options are written"


def test_set_returns_a_new_validated_config():
    base = RunConfig()
    changed = base.set("method.lora.r", 32)
    assert changed.method.lora.r == 32 and base.method.lora.r == 8
    with pytest.raises(ConfigError) as err:
        base.set("method.lora.r", 0)
    assert str(err.value).splitlines()[1].strip() == "method.lora.r: must be >= 1, got 0"
    with pytest.raises(ConfigError, match="no such field"):
        base.set("training.nothing.here", 1)


def test_cli_strings_are_coerced_like_yaml():
    config = RunConfig().update({"quantization.bits": "4", "distributed.zero_stage": "none"})
    assert config.quantization.bits == 4 and config.distributed.zero_stage is None


def test_qlora_implies_a_4bit_base_and_refuses_zero3():
    config = RunConfig().set("method.name", "qlora")
    assert config.bits == 4
    assert config.set("quantization.bits", 8).bits == 8
    with pytest.raises(ConfigError, match="distributed.zero_stage: ZeRO-3"):
        config.set("distributed.zero_stage", 3)


def test_launcher_auto_resolves_from_the_distributed_settings():
    assert RunConfig().launcher == "thread"
    assert RunConfig().set("distributed.num_processes", 2).launcher == "torchrun"
    assert RunConfig().set("distributed.zero_stage", 2).launcher == "deepspeed"


@pytest.mark.parametrize("name", list(list_presets()))
def test_every_preset_validates(name):
    config = RunConfig.preset(name)
    assert config.task.name in tasks and config.method.name in methods


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="demo"):
        RunConfig.preset("nope")


def _fields(model, prefix=""):
    for name, info in model.model_fields.items():
        yield f"{prefix}{name}", info
        ann = info.annotation
        if isinstance(ann, type) and hasattr(ann, "model_fields"):
            yield from _fields(ann, f"{prefix}{name}.")


def test_every_field_has_help_text_and_a_default():
    for path, info in _fields(RunConfig):
        assert info.description, f"{path} has no help text"
        assert not info.is_required(), f"{path} has no default"


@pytest.mark.parametrize("path", BAD, ids=[p.stem for p in BAD])
def test_bad_config_is_rejected_by_field_and_writes_nothing(path, tmp_path, capsys):
    field, message = expectation(path)
    runs = tmp_path / "runs"
    own_dir = "runs_dir:" in path.read_text()  # the file names its own (unwritable) runs folder
    code = main(["train", str(path)] + ([] if own_dir else ["--runs-dir", str(runs)]))
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    wanted = f"{field}: " if field else ""
    assert any(wanted in line and message in line for line in err.splitlines()), err
    assert not runs.exists() or not any(runs.iterdir()), "a rejected config must not create a run"


def test_there_are_at_least_fifty_bad_configs():
    assert len(BAD) >= 50


def test_light_modules_do_not_import_the_training_stack():
    code = (
        "import sys, ftkit, ftkit.config, ftkit.cli, ftkit.store, ftkit.events, ftkit.preflight\n"
        "from ftkit.methods import methods; from ftkit.tasks import tasks; list(methods); list(tasks)\n"
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'deepspeed', 'bitsandbytes') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
