"""Hand-offs to Azure ML, AI Foundry and Kaito: round trips through the vendors' own loaders, types and schema."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ftkit.cli import main
from ftkit.config import RunConfig
from ftkit.handoff import HandoffError, build, list_presets, load_preset, resolve_config, targets
from ftkit.handoff import _chat, foundry, kaito
from ftkit.tasks import tasks

PHI3 = "microsoft/Phi-3-mini-4k-instruct"
KAITO_OUT = {"output_image": "example.azurecr.io/adapter:0.1.0", "image_push_secret": "acr-push"}


def phi3(task="chat", **changes):
    """A small LoRA run of Phi-3-mini on a task's built-in data (nothing is downloaded: only files are built)."""
    config = RunConfig.from_dict({"model": {"name_or_path": PHI3}, "task": {"name": task}, "method": {"name": "lora"},
                                  "training": {"num_epochs": 2}})
    return config.update(changes) if changes else config


def lines(text):
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture
def user_csv(tmp_path):
    path = tmp_path / "reviews.csv"
    rows = [("great kettle, works well", "good"), ("broke after a day", "bad")] * 10
    path.write_text("review,stars\n" + "".join(f'"{t}",{l}\n' for t, l in rows))
    return path


# ---- the registry and what importing costs -------------------------------------------


def test_every_target_is_registered_with_options_that_parse_and_say_what_they_cannot_carry():
    assert set(targets.names()) == {"azureml", "foundry", "kaito"}
    for spec in targets:
        spec.parse_options({})
        assert spec.cannot and spec.carries and spec.kind in ("platform", "service")
        assert all(info.description for info in spec.options.model_fields.values())


def test_importing_config_widgets_cli_and_handoff_loads_no_torch_and_no_sdk():
    code = ("import sys, ftkit.config, ftkit.widgets, ftkit.widgets.handoff, ftkit.handoff, ftkit.cli;"
            "ftkit.cli.build_parser(); from ftkit.handoff import targets; list(targets);"
            "from ftkit.widgets import App; App(controller=object());"
            "print([m for m in ('torch', 'transformers', 'datasets', 'azure.ai.ml', 'azure.identity', 'openai') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---- Azure Machine Learning --------------------------------------------------------------


def _load_job(handoff, out):
    from azure.ai.ml import load_job

    handoff.write(out)
    return load_job(out / "job.yml")


def test_azureml_zero3_on_two_nodes_reloads_with_load_job_unchanged(tmp_path):
    preset = load_preset("phi3-mini-zero3", "azureml")
    config = preset["config"]
    handoff = build(config, "azureml", preset["options"])
    job = _load_job(handoff, tmp_path)
    d = config.distributed
    assert (d.num_nodes, d.num_processes, d.zero_stage) == (2, 4, 3)
    assert job.distribution.type == "pytorch"
    assert job.distribution.process_count_per_instance == d.num_processes
    assert job.resources.instance_count == d.num_nodes
    assert job.command == "python -m ftkit.handoff._entry ftkit-config.json ${{outputs.run}}"
    assert job.compute == "gpu-cluster" and job.experiment_name == "ftkit-phi3-mini-zero3"
    assert (Path(job.base_path) / job.code).resolve() == (tmp_path / "src").resolve()
    assert (tmp_path / "src" / "ftkit" / "worker.py").is_file()
    assert RunConfig.from_json(tmp_path / "src" / "ftkit-config.json").to_dict() == config.to_dict()
    ds = json.loads((tmp_path / "src" / "ds_config.json").read_text())
    assert ds["zero_optimization"]["stage"] == 3
    from importlib.metadata import version

    pip = job.environment.conda_file["dependencies"][-1]["pip"]
    assert f"deepspeed=={version('deepspeed')}" in pip and f"peft=={version('peft')}" in pip
    assert (tmp_path / "requirements.txt").read_text().splitlines() == pip
    assert not job.inputs  # built-in data travels in the code snapshot
    assert job.outputs["run"].type == "uri_folder"
    from ftkit.handoff.azureml import dump

    assert dump(job) == (tmp_path / "job.yml").read_text()  # loaded and dumped again: the same file


def test_azureml_user_csv_becomes_a_uri_file_input_and_the_command_reads_it(tmp_path, user_csv):
    config = phi3("classification", **{"data.source": str(user_csv), "data.columns": {"text": "review", "label": "stars"},
                                       "distributed.num_processes": 2, "distributed.launcher": "torchrun"})
    job = _load_job(build(config, "azureml", {"compute": "a100-cluster"}), tmp_path / "out")
    assert job.inputs["data_source"].type == "uri_file"
    assert (Path(job.base_path) / job.inputs["data_source"].path).read_text() == user_csv.read_text()
    assert job.command.endswith("--set data.source=${{inputs.data_source}}")
    assert job.distribution.process_count_per_instance == 2 and job.resources.instance_count == 1
    assert job.compute == "a100-cluster"


def test_azureml_a_local_model_folder_travels_as_an_input_and_a_hub_id_as_its_name(tmp_path):
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    job = _load_job(build(phi3(**{"model.name_or_path": str(model)}), "azureml"), tmp_path / "out")
    assert job.inputs["model"].type == "uri_folder"
    assert (Path(job.base_path) / job.inputs["model"].path / "config.json").is_file()
    assert "--set model.name_or_path=${{inputs.model}}" in job.command
    hub = build(phi3(**{"model.name_or_path": "gpt2"}), "azureml")
    assert any("gpt2: downloaded from the Hugging Face Hub" in n for n in hub.notes)


def test_azureml_a_folder_becomes_a_uri_folder_input(tmp_path):
    from ftkit.handoff.azureml import _input

    (tmp_path / "saved").mkdir()
    files = {}
    assert _input(str(tmp_path / "saved"), "data", files).type == "uri_folder" and "data/saved" in files
    assert _input("azureml://datastores/blob/paths/x.jsonl", "data", files).type == "uri_file"


def test_azureml_entry_points_the_worker_at_the_mounted_inputs(tmp_path, monkeypatch, user_csv):
    from ftkit import worker
    from ftkit.handoff import _entry

    seen = {}
    monkeypatch.setattr(worker, "main", lambda argv: seen.setdefault("argv", argv) and 0)
    config = phi3("classification", **{"data.source": "/nowhere/reviews.csv",
                                       "data.columns": {"text": "review", "label": "stars"}})
    (tmp_path / "ftkit-config.json").write_text(config.to_json())
    run_dir = tmp_path / "outputs" / "run"
    assert _entry.main([str(tmp_path / "ftkit-config.json"), str(run_dir), "--set", f"data.source={user_csv}"]) == 0
    assert seen["argv"] == [str(run_dir)]
    assert RunConfig.from_json(run_dir / "config.json").data.source == str(user_csv)


def test_azureml_refuses_what_it_cannot_upload(tmp_path):
    with pytest.raises(HandoffError) as exc:
        build(phi3(**{"data.source": str(tmp_path / "missing.jsonl")}), "azureml")
    assert exc.value.problems[0][0] == "data.source" and "does not exist" in str(exc.value)
    with pytest.raises(HandoffError, match="resume_from"):
        build(phi3(resume_from=str(tmp_path)), "azureml")


def test_azureml_submit_says_exactly_what_is_missing(tmp_path, monkeypatch):
    for var in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AZURE_RESOURCE_GROUP", "rg")
    spec = targets.get("azureml")
    with pytest.raises(HandoffError) as exc:
        spec.submit(tmp_path, spec.parse_options({"workspace": "ws"}))
    assert [p for p, _ in exc.value.problems] == ["--opt subscription_id"]
    assert "AZURE_SUBSCRIPTION_ID" in str(exc.value)


# ---- Azure AI Foundry --------------------------------------------------------------------


def _message_schema():
    from openai.types.chat import ChatCompletionMessageParam
    from pydantic import TypeAdapter

    return TypeAdapter(list[ChatCompletionMessageParam])


@pytest.mark.parametrize("task", tasks.names())
def test_foundry_converts_every_task_builtin_data_to_valid_chat_lines(task):
    config = phi3(task, **{"data.max_train_samples": 300})
    handoff = build(config, "foundry")
    schema = _message_schema()
    for name in ("training.jsonl", "validation.jsonl"):
        rows = lines(handoff.text(name))
        assert rows
        for row in rows:
            assert set(row) == {"messages"}
            schema.validate_python(row["messages"])
            assert _chat.check_line(row["messages"]) == []
            assert row["messages"][-1]["role"] == "assistant" and row["messages"][-1]["content"].strip()
    from ftkit.data import load_rows

    train, evals = load_rows(config)
    assert len(lines(handoff.text("training.jsonl"))) == len(train) == 300
    assert len(lines(handoff.text("validation.jsonl"))) == len(evals)


def test_foundry_keeps_each_task_prompt_format():
    chat = RunConfig.preset("chat-demo")
    first = lines(build(phi3("chat"), "foundry").text("training.jsonl"))[0]["messages"]
    from ftkit.data import load_rows

    assert first == load_rows(chat)[0][0]["messages"]  # chat rows as they are
    t = lines(build(phi3("translation", **{"task.translation.source_prefix": "translate English to Veltic: "}),
                    "foundry").text("training.jsonl"))[0]["messages"]
    assert t[0]["role"] == "user" and t[0]["content"].startswith("translate English to Veltic: ")
    c = lines(build(phi3("classification"), "foundry").text("training.jsonl"))
    assert {r["messages"][-1]["content"] for r in c} == {"negative", "positive"}
    assert "negative, positive" in c[0]["messages"][0]["content"]


def test_foundry_converts_a_user_csv_with_mapped_columns(user_csv):
    config = phi3("classification", **{"data.source": str(user_csv), "data.columns": {"text": "review", "label": "stars"}})
    handoff = build(config, "foundry")
    rows = lines(handoff.text("training.jsonl")) + lines(handoff.text("validation.jsonl"))
    assert len(rows) == 20
    assert {r["messages"][-1]["content"] for r in rows} == {"good", "bad"}
    assert {r["messages"][1]["content"] for r in rows} == {"great kettle, works well", "broke after a day"}


def test_foundry_chat_csv_with_json_messages(tmp_path):
    import csv

    path = tmp_path / "chat.csv"
    convo = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    with path.open("w", newline="") as f:
        csv.writer(f).writerows([["messages"]] + [[json.dumps(convo)]] * 20)
    rows = lines(build(phi3("chat", **{"data.source": str(path)}), "foundry").text("training.jsonl"))
    assert rows[0]["messages"] == convo


def test_foundry_request_validates_with_the_openai_sdk_types_and_carries_the_run():
    from openai.types.fine_tuning.job_create_params import JobCreateParams
    from pydantic import TypeAdapter

    preset = load_preset("phi3-mini", "foundry")
    handoff = build(preset["config"], "foundry", preset["options"])
    req = json.loads(handoff.text("request.json"))
    TypeAdapter(JobCreateParams).validate_python(req)
    t = preset["config"].training
    assert req["model"] == "Phi-3-mini-4k-instruct" and req["seed"] == t.seed
    assert req["hyperparameters"] == {"n_epochs": 2, "batch_size": t.batch_size * t.gradient_accumulation_steps,
                                      "learning_rate_multiplier": 1.0}
    assert req["training_file"] == "training.jsonl" and req["validation_file"] == "validation.jsonl"
    assert set(req) <= set(JobCreateParams.__required_keys__) | set(JobCreateParams.__optional_keys__)
    medium = load_preset("phi3-medium", "foundry")
    assert json.loads(build(medium["config"], "foundry", medium["options"]).text("request.json"))["model"] == \
        "Phi-3-medium-4k-instruct"


@pytest.mark.parametrize("bad, where", [
    ({"model": "Phi-3-mini-4k-instruct"}, "request.training_file"),
    ({"model": "m", "training_file": "t", "hyperparameters": {"n_epochs": "three"}}, "request.hyperparameters.n_epochs"),
    ({"model": "m", "training_file": "t", "epochs": 3}, "request.epochs"),
    ({"model": "m", "training_file": "t", "hyperparameters": {"n_epoch": 3}}, "request.hyperparameters.n_epoch"),
    ({"model": "m", "training_file": "t", "seed": "x"}, "request.seed"),
])
def test_foundry_refuses_a_wrong_request(bad, where):
    with pytest.raises(HandoffError) as exc:
        foundry.validate_request(bad)
    assert any(p.startswith(where) for p, _ in exc.value.problems), exc.value.problems


def test_foundry_refuses_models_methods_and_settings_it_would_change():
    with pytest.raises(HandoffError) as exc:
        build(phi3(**{"model.name_or_path": "meta-llama/Llama-3.1-8B"}), "foundry")
    assert exc.value.problems[0][0] == "model.name_or_path" and all(m in str(exc.value) for m in foundry.MODELS)
    with pytest.raises(HandoffError) as exc:
        build(phi3(), "foundry", {"model": "gpt-4o"})
    assert exc.value.problems[0][0] == "foundry.model"
    with pytest.raises(HandoffError, match="method.name"):
        build(phi3(**{"method.name": "full"}), "foundry")
    with pytest.raises(HandoffError, match="training.num_epochs"):
        build(phi3(**{"training.num_epochs": 1.5}), "foundry")
    with pytest.raises(HandoffError, match="training.max_steps"):
        build(phi3(**{"training.max_steps": 100}), "foundry")
    req = json.loads(build(phi3(**{"training.max_steps": 100}), "foundry", {"n_epochs": 3}).text("request.json"))
    assert req["hyperparameters"]["n_epochs"] == 3
    with pytest.raises(HandoffError, match="at least 10"):
        build(phi3(**{"data.max_train_samples": 5}), "foundry")
    with pytest.raises(HandoffError) as exc:
        build(phi3(), "foundry", {"n_epochs": 0})
    assert exc.value.problems[0][0] == "foundry.n_epochs" and ">= 1" in exc.value.problems[0][1]


@pytest.mark.parametrize("messages, problem", [
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "  "}], "is empty"),
    ([{"role": "robot", "content": "q"}, {"role": "assistant", "content": "a"}], "role 'robot'"),
    ([{"role": "user", "content": "q"}, {"role": "system", "content": "s"}, {"role": "assistant", "content": "a"}],
     "system message may only come first"),
    ([{"role": "user", "content": "q"}], "must end with an assistant"),
    ([{"role": "assistant", "content": "a"}], "no user message"),
    ([], "non-empty list"),
])
def test_each_line_is_checked(messages, problem):
    assert any(problem in p for p in _chat.check_line(messages))


def test_foundry_refuses_an_example_longer_than_the_model_context():
    long = [{"messages": [{"role": "user", "content": "x " * 20000}, {"role": "assistant", "content": "y"}]}]
    with pytest.raises(HandoffError, match="4096"):
        foundry.check_file(long, "training.jsonl", 4096)


# ---- Kaito ---------------------------------------------------------------------------------


def _crd_schema():
    return json.loads(kaito.SCHEMA_PATH.read_text())


def test_the_shipped_schema_is_kaitos_v1beta1_workspace_crd():
    schema = _crd_schema()
    assert "kaito.sh_workspaces.yaml" in schema["$comment"]
    assert schema["properties"]["tuning"]["required"] == ["input", "output"]
    assert schema["properties"]["resource"]["required"] == ["labelSelector"]


def test_kaito_phi3_qlora_preset_validates_against_the_crd_and_maps_the_run(tmp_path):
    import jsonschema

    preset = load_preset("phi3-mini-qlora", "kaito")
    config = preset["config"]
    handoff = build(config, "kaito", preset["options"])
    handoff.write(tmp_path)
    workspace = yaml.safe_load((tmp_path / "workspace.yaml").read_text())
    jsonschema.validate(workspace, _crd_schema())
    assert workspace["apiVersion"] == "kaito.sh/v1beta1" and workspace["kind"] == "Workspace"
    tuning = workspace["tuning"]
    assert tuning["method"] == "qlora" and tuning["preset"]["name"] == "phi-3-mini-4k-instruct"
    assert workspace["resource"]["instanceType"] == "Standard_NC24ads_A100_v4"
    assert workspace["resource"]["labelSelector"]["matchLabels"]
    configmap = yaml.safe_load((tmp_path / "training-config.yaml").read_text())
    assert tuning["config"] == configmap["metadata"]["name"]
    tc = yaml.safe_load(configmap["data"]["training_config.yaml"])["training_config"]
    assert list(tc) == ["ModelConfig", "QuantizationConfig", "LoraConfig", "TrainingArguments", "DatasetConfig",
                        "DataCollator"]
    q, lora, args = tc["QuantizationConfig"], tc["LoraConfig"], tc["TrainingArguments"]
    assert q["load_in_4bit"] is True and q["bnb_4bit_quant_type"] == config.quantization.quant_type
    opts = config.method_options
    assert (lora["r"], lora["lora_alpha"], lora["lora_dropout"]) == (opts.r, opts.lora_alpha, opts.lora_dropout)
    t = config.training
    assert (args["learning_rate"], args["per_device_train_batch_size"], args["gradient_accumulation_steps"],
            args["seed"], args["lr_scheduler_type"]) == (t.learning_rate, t.batch_size, t.gradient_accumulation_steps,
                                                         t.seed, t.lr_scheduler)
    data_map = yaml.safe_load((tmp_path / "data-configmap.yaml").read_text())
    assert tuning["input"]["volumeSource"]["configMap"]["name"] == data_map["metadata"]["name"]
    rows = lines(data_map["data"]["train.jsonl"])
    assert len(rows) > 900 and all(_chat.check_line(r["messages"]) == [] for r in rows)
    assert tc["DatasetConfig"]["dataset_path"] == "data/train.jsonl"


def test_kaito_rejects_lora_with_4bit_loading():
    config = phi3(**{"quantization.bits": 4})
    assert config.method.name == "lora" and config.bits == 4  # a valid ftkit run, refused by Kaito's rules
    with pytest.raises(HandoffError) as exc:
        build(config, "kaito", KAITO_OUT)
    assert exc.value.problems == [("quantization.bits", "Kaito's lora method must not load the base in 4 or 8 bits; "
                                                        "use method qlora, or set quantization.bits to none")]
    assert build(phi3(), "kaito", KAITO_OUT).files  # the same run unquantized is fine


def test_kaito_rules_qlora_needs_low_bit_loading_and_input_and_output_are_required():
    workspace, configmap, _ = kaito.manifests(phi3(**{"method.name": "qlora"}), kaito.KaitoOptions(**KAITO_OUT))
    kaito.validate(workspace, configmap)
    tc = yaml.safe_load(configmap["data"]["training_config.yaml"])
    del tc["training_config"]["QuantizationConfig"]
    no_quant = {**configmap, "data": {"training_config.yaml": yaml.safe_dump(tc)}}
    with pytest.raises(HandoffError, match="qlora method needs load_in_4bit or load_in_8bit"):
        kaito.validate(workspace, no_quant)
    for part in ("input", "output"):
        broken = json.loads(json.dumps(workspace))
        del broken["tuning"][part]
        with pytest.raises(HandoffError) as exc:
            kaito.validate(broken, configmap)
        assert f"'{part}' is a required property" in str(exc.value)
    typo = json.loads(json.dumps(workspace))
    typo["tuning"]["methd"] = "qlora"
    with pytest.raises(HandoffError, match="methd"):
        kaito.validate(typo, configmap)
    with pytest.raises(HandoffError) as exc:
        build(phi3(), "kaito")
    assert exc.value.problems[0][0] == "kaito.output_image"


def test_kaito_only_takes_methods_and_models_it_runs():
    with pytest.raises(HandoffError, match="lora or qlora only"):
        build(phi3(**{"method.name": "dora"}), "kaito", KAITO_OUT)
    with pytest.raises(HandoffError) as exc:
        build(phi3(**{"model.name_or_path": "gpt2"}), "kaito", KAITO_OUT)
    assert exc.value.problems[0][0] == "model.name_or_path" and "phi-3-mini-4k-instruct" in str(exc.value)
    with pytest.raises(HandoffError, match="public http"):
        build(phi3(), "kaito", {**KAITO_OUT, "input_urls": ["http://localhost/data.jsonl"]})
    urls = build(phi3(), "kaito", {**KAITO_OUT, "input_urls": ["https://example.org/train.jsonl"]})
    assert "data-configmap.yaml" not in urls.files


# ---- presets, the command, the panel ------------------------------------------------------


def test_every_preset_builds():
    assert {"foundry-phi3-mini", "foundry-phi3-medium", "kaito-phi3-mini-qlora", "azureml-phi3-mini-zero3"} <= \
        set(list_presets())
    for name in list_presets():
        preset = load_preset(name)
        assert build(preset["config"], preset["target"], preset["options"]).files


def test_cli_writes_the_folder_and_prints_how_to_submit(tmp_path, capsys):
    out = tmp_path / "foundry"
    assert main(["handoff", "--preset", "phi3-mini", "--target", "foundry", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "not carried:" in text and "submit:" in text
    assert {p.name for p in out.iterdir()} == {"training.jsonl", "validation.jsonl", "request.json", "ftkit-config.yaml"}
    config_file = tmp_path / "run.yaml"
    phi3(**{"data.max_train_samples": 50}).to_yaml(config_file)
    assert main(["handoff", str(config_file), "--target", "kaito", "--out", str(tmp_path / "k"), "--json",
                 "--opt", "output_pvc=adapters", "--opt", "instance_type=Standard_NC6s_v3"]) == 0
    assert json.loads(capsys.readouterr().out)["target"] == "kaito"
    assert yaml.safe_load((tmp_path / "k" / "workspace.yaml").read_text())["resource"]["instanceType"] == \
        "Standard_NC6s_v3"


def test_cli_bad_option_names_the_field(tmp_path, capsys):
    assert main(["handoff", "--preset", "phi3-mini", "--target", "foundry", "--out", str(tmp_path),
                 "--opt", "n_epochs=many"]) == 2
    assert "foundry.n_epochs: must be a whole number" in capsys.readouterr().err
    assert main(["handoff", "--preset", "phi3-mini", "--target", "foundry", "--opt", "epochs=2"]) == 2
    assert "foundry.epochs: unknown key" in capsys.readouterr().err


def test_cli_takes_a_run_folder_and_writes_beside_it(tmp_path, capsys):
    run = tmp_path / "runs" / "20260101-000000-lora-chat-abcd"
    run.mkdir(parents=True)
    phi3().to_json(run / "config.json")
    assert resolve_config(str(run)).to_dict() == phi3().to_dict()
    assert main(["handoff", str(run), "--target", "foundry"]) == 0
    assert (run / "handoff" / "foundry" / "request.json").is_file()


def test_cli_without_the_extra_says_which_to_install(monkeypatch, capsys, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name.startswith("azure") else real(name, *a))
    assert main(["handoff", "--preset", "demo", "--target", "azureml", "--out", str(tmp_path)]) == 2
    assert "pip install 'ftkit[azure]'" in capsys.readouterr().err


def test_cli_submit_without_a_workspace_writes_the_files_and_says_what_is_missing(tmp_path, monkeypatch, capsys):
    for var in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    assert main(["handoff", "--preset", "demo", "--target", "azureml", "--out", "job", "--submit"]) == 1
    err = capsys.readouterr().err
    assert all(f"--opt {key}" in err for key in ("subscription_id", "resource_group", "workspace"))
    assert (tmp_path / "job" / "job.yml").is_file()
    monkeypatch.setenv("PATH", str(tmp_path))  # no kubectl
    assert main(["handoff", "--preset", "phi3-mini-qlora", "--target", "kaito", "--out", "k", "--submit"]) == 1
    assert "kubectl" in capsys.readouterr().err


def test_panel_alone_previews_switches_targets_and_writes(tmp_path):
    from ftkit.widgets.handoff import HandoffPanel

    panel = HandoffPanel(phi3(**{"data.max_train_samples": 100}), target="foundry")
    assert panel.handoff is not None and panel.file_picker.value == "request.json"
    assert '&quot;n_epochs&quot;: 2' in panel.preview.value
    panel.set(n_epochs=4)
    assert '&quot;n_epochs&quot;: 4' in panel.preview.value
    panel.set(model="gpt-4o")
    assert panel.handoff is None and panel.problems[0][0] == "foundry.model"
    assert "Phi-3-medium-4k-instruct" in panel.status.value and panel.write_button.disabled
    panel.set(model=None)
    panel.target.value = "kaito"
    assert set(panel.fields) == set(kaito.KaitoOptions.model_fields)
    assert panel.problems[0][0] == "kaito.output_image"
    panel.set(**KAITO_OUT)
    assert panel.file_picker.value == "workspace.yaml" and "kaito.sh/v1beta1" in panel.preview.value
    panel.file_picker.value = "training-config.yaml"
    assert "LoraConfig" in panel.preview.value
    written = panel.write(tmp_path / "kaito")
    assert (tmp_path / "kaito" / "workspace.yaml") in written and "wrote" in panel.message.value
    panel.target.value = "azureml"
    assert panel.file_picker.value == "job.yml" and "process_count_per_instance" in panel.preview.value


def test_panel_follows_the_form_and_the_app_has_a_run_elsewhere_tab():
    from ftkit.widgets.app import App

    app = App(config=phi3(**{"data.max_train_samples": 100}))
    titles = [app.tabs.get_title(i) for i in range(len(app.tabs.children))]
    assert titles[-1] == "Run elsewhere" and app.tabs.children[-1] is app.handoff
    assert app.handoff.handoff is None and not app.handoff.problems  # nothing built until the tab shows
    app.handoff.target.value = "foundry"
    app.tabs.selected_index = len(titles) - 1
    assert app.handoff.handoff is not None
    app.form.fields["training.num_epochs"].input.value = 3  # typed into the form
    req = json.loads(app.handoff.handoff.text("request.json"))
    assert req["hyperparameters"]["n_epochs"] == 3


def test_kaito_data_too_big_for_a_configmap_asks_for_urls(monkeypatch):
    monkeypatch.setattr(kaito, "CONFIGMAP_LIMIT", 10_000)
    with pytest.raises(HandoffError) as exc:
        build(phi3(), "kaito", KAITO_OUT)
    assert exc.value.problems[0][0] == "kaito.input_urls" and "input_urls" in exc.value.problems[0][1]


def test_an_unknown_target_is_named():
    with pytest.raises(HandoffError, match="unknown target 'sagemaker'; known: azureml, foundry, kaito"):
        build(phi3(), "sagemaker")
