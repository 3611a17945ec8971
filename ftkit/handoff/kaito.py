"""Kaito on Kubernetes (model as a platform): a tuning ``Workspace`` and its ``training_config.yaml`` ConfigMap.

Kaito fine-tunes its preset models with LoRA or QLoRA (peft + bitsandbytes
under a Transformers Trainer), configured by a ConfigMap holding
``training_config.yaml``. ftkit maps the RunConfig onto its sections and
checks the Workspace against the v1beta1 CRD's openAPI schema shipped in
``schemas/`` (from kaito-project/kaito) and against the rules Kaito's
admission webhook applies (``api/v1beta1/workspace_validation.go``,
``tuning_config_validation.go``).
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

from . import _chat
from ._base import Handoff, HandoffError, TargetSpec, dumps_yaml
from ..schema import Options, field

SCHEMA_PATH = Path(__file__).parent / "schemas" / "kaito_workspace_v1beta1.json"
API_VERSION = "kaito.sh/v1beta1"
METHODS = ("lora", "qlora")  # what Kaito's tuning runs (TuningMethodLora, TuningMethodQLora)
#: presets Kaito can tune (presets/workspace/models/transformer_runtime_tuning_parameters.go)
TUNING_PRESETS = ("phi-4", "phi-4-mini-instruct", "phi-3-mini-4k-instruct", "phi-3-mini-128k-instruct",
                  "phi-3-medium-4k-instruct", "phi-3-medium-128k-instruct", "phi-3.5-mini-instruct",
                  "mistral-7b-v0.3", "qwen2.5-coder-7b-instruct", "qwen2.5-coder-32b-instruct")
CONFIGMAP_LIMIT = 1_000_000  # bytes a Kubernetes ConfigMap holds (1 MiB, less room for its metadata)
DTYPES = {"auto": "bfloat16", "float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


class KaitoOptions(Options):
    name: Optional[str] = field(None, "Workspace name (lower case, digits, '-'); empty: from the run's name.")
    namespace: str = field("default", "Namespace of the Workspace and its ConfigMaps.", min_length=1)
    instance_type: str = field("Standard_NC24ads_A100_v4", "GPU node size Kaito provisions for the tuning job.",
                               min_length=1)
    preset: Optional[str] = field(None, "Kaito tuning preset; empty: from the run's model "
                                        "(microsoft/Phi-3-mini-4k-instruct -> phi-3-mini-4k-instruct).")
    input_urls: list[str] = field(factory=list, help="https URLs of the data; empty: the run's data, converted to "
                                                     "chat JSONL, in a ConfigMap mounted as the input volume.")
    output_image: Optional[str] = field(None, "Registry image the adapter is pushed to, e.g. "
                                              "myacr.azurecr.io/phi3-adapter:0.1.0.")
    image_push_secret: Optional[str] = field(None, "Secret with push rights to output_image's registry.")
    output_pvc: Optional[str] = field(None, "Or: a PersistentVolumeClaim the adapter is written to.")


def dns_name(text: str) -> str:
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")[:50] or "ftkit-tuning"


def preset_name(config, options: KaitoOptions) -> str:
    name = options.preset or config.model_name.rstrip("/").split("/")[-1].lower()
    if name not in TUNING_PRESETS:
        where = "kaito.preset" if options.preset else "model.name_or_path"
        raise HandoffError([(where, f"{name!r} is not a model Kaito tunes; its tuning presets are "
                                    f"{', '.join(TUNING_PRESETS)} (--opt preset=... or model.name_or_path)")])
    return name


def training_config(config) -> dict:
    """``training_config.yaml``'s content mapped from the RunConfig."""
    t, q, m = config.training, config.quantization, config.model
    opts = config.method_options
    model = {"torch_dtype": DTYPES[m.dtype], "local_files_only": True, "device_map": "auto"}
    if m.trust_remote_code:
        model["trust_remote_code"] = True
    if m.attn_implementation:
        model["attn_implementation"] = m.attn_implementation
    out: dict = {"ModelConfig": model}
    if config.bits == 4:
        out["QuantizationConfig"] = {"load_in_4bit": True, "bnb_4bit_quant_type": q.quant_type,
                                     "bnb_4bit_compute_dtype": DTYPES[q.compute_dtype],
                                     "bnb_4bit_use_double_quant": q.double_quant}
    elif config.bits == 8:
        out["QuantizationConfig"] = {"load_in_8bit": True}
    alpha = int(opts.lora_alpha) if float(opts.lora_alpha).is_integer() else opts.lora_alpha
    lora = {"r": opts.r, "lora_alpha": alpha, "lora_dropout": opts.lora_dropout, "bias": opts.bias}
    if opts.target_modules:
        lora["target_modules"] = opts.target_modules
    if opts.modules_to_save:
        lora["modules_to_save"] = opts.modules_to_save
    out["LoraConfig"] = lora
    args = {
        "output_dir": "/mnt/results",
        "per_device_train_batch_size": t.batch_size,
        "per_device_eval_batch_size": t.eval_batch_size or t.batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "learning_rate": t.learning_rate,
        "lr_scheduler_type": t.lr_scheduler,
        "warmup_ratio": t.warmup_ratio,
        "weight_decay": t.weight_decay,
        "optim": t.optimizer,
        "max_grad_norm": t.max_grad_norm,
        "seed": t.seed,
        "logging_steps": t.logging_steps,
        "gradient_checkpointing": t.gradient_checkpointing,
        "save_strategy": "steps" if t.save_steps else "no",
        "report_to": list(t.report_to) or "none",
        "ddp_find_unused_parameters": False,
    }
    if t.max_steps:
        args["max_steps"] = t.max_steps
    else:
        args["num_train_epochs"] = t.num_epochs
    if t.save_steps:
        args["save_steps"] = t.save_steps
        if t.save_total_limit:
            args["save_total_limit"] = t.save_total_limit
    precision = {"auto": "bf16", "bf16": "bf16", "fp16": "fp16", "fp32": None}[t.precision]
    if precision:
        args[precision] = True
    out["TrainingArguments"] = args
    split = 1.0 if config.data.eval_source else round(1 - config.data.eval_fraction, 4)
    out["DatasetConfig"] = {"shuffle_dataset": True, "shuffle_seed": t.seed, "train_test_split": split,
                            "messages_column": "messages"}
    out["DataCollator"] = {"mlm": False}  # causal language modelling, as ftkit trains it
    return {"training_config": out}


def _refuse(config) -> None:
    problems = []
    if config.method.name not in METHODS:
        problems.append(("method.name", f"Kaito tunes with {' or '.join(METHODS)} only; {config.method.name} "
                                        "would not be what runs there: pick lora or qlora, or hand the run to azureml"))
    if config.distributed.num_nodes > 1:
        problems.append(("distributed.num_nodes", "Kaito tuning runs on one node (its webhook refuses more); set "
                                                  "num_nodes 1 or hand the run to azureml"))
    if config.resume_from:
        problems.append(("resume_from", "Kaito starts from the preset's base weights; set resume_from to none"))
    if problems:
        raise HandoffError(problems)


def manifests(config, options: KaitoOptions) -> tuple[dict, dict, Optional[str]]:
    """(Workspace, tuning ConfigMap, name of the data ConfigMap or None)."""
    name = dns_name(options.name or config.name or f"tuning-{config.task.name}")
    preset = preset_name(config, options)
    params = f"{name}-params"
    tuning: dict = {"preset": {"name": preset}, "method": config.method.name, "config": params}
    data_map = None
    if options.input_urls:
        tuning["input"] = {"urls": list(options.input_urls)}
    else:
        data_map = f"{name}-data"
        tuning["input"] = {"volumeSource": {"configMap": {"name": data_map}}}
    output: dict = {}
    if options.output_image:
        output["image"] = options.output_image
    if options.image_push_secret:
        output["imagePushSecret"] = options.image_push_secret
    if options.output_pvc:
        output["volumeSource"] = {"persistentVolumeClaim": {"claimName": options.output_pvc}}
    tuning["output"] = output
    workspace = {
        "apiVersion": API_VERSION, "kind": "Workspace",
        "metadata": {"name": name, "namespace": options.namespace},
        "resource": {"instanceType": options.instance_type, "labelSelector": {"matchLabels": {"app": name}}},
        "tuning": tuning,
    }
    tc = training_config(config)
    if data_map:
        tc["training_config"]["DatasetConfig"]["dataset_path"] = "data/train.jsonl"
    configmap = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": params, "namespace": options.namespace},
                 "data": {"training_config.yaml": dumps_yaml(tc)}}
    return workspace, configmap, data_map


def _strict(schema):
    """The CRD schema with unknown fields refused: Kubernetes would prune them, silently changing the run."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def validate(workspace: dict, configmap: dict) -> None:
    """The Workspace against the CRD schema and Kaito's webhook rules; raises HandoffError naming the field."""
    import jsonschema
    import yaml

    problems = []
    schema = _strict(json.loads(SCHEMA_PATH.read_text()))
    for err in sorted(jsonschema.Draft7Validator(schema).iter_errors(workspace), key=lambda e: list(e.path)):
        problems.append((".".join(str(p) for p in err.path) or "workspace", f"{err.message} (Kaito CRD schema)"))
    if workspace.get("apiVersion") != API_VERSION or workspace.get("kind") != "Workspace":
        problems.append(("apiVersion", f"must be {API_VERSION} Workspace"))
    tuning = workspace.get("tuning") or {}
    method = str(tuning.get("method", "")).lower()
    if method not in METHODS:
        problems.append(("tuning.method", f"{method!r}: Kaito runs {' or '.join(METHODS)}"))
    if (workspace.get("resource") or {}).get("count", 1) > 1:
        problems.append(("resource.count", "tuning runs on one node"))
    source = tuning.get("input") or {}
    if sum(bool(source.get(k)) for k in ("urls", "image", "volumeSource")) != 1:
        problems.append(("tuning.input", "exactly one of urls, image or volumeSource must be given"))
    for url in source.get("urls") or []:
        if not re.match(r"^https?://[^/\s]+", url) or re.match(r"^https?://(localhost|127\.|10\.|192\.168\.)", url):
            problems.append(("tuning.input.urls", f"{url!r} must be a public http(s) URL"))
    dest = tuning.get("output") or {}
    if sum(bool(dest.get(k)) for k in ("image", "volumeSource")) != 1:
        problems.append(("kaito.output_image", "the adapter needs exactly one destination: --opt output_image=... "
                                               "with --opt image_push_secret=..., or --opt output_pvc=..."))
    if dest.get("image") and not dest.get("imagePushSecret"):
        problems.append(("kaito.image_push_secret", "pushing output_image needs a secret: --opt image_push_secret=..."))
    if tuning.get("config") and tuning["config"] != configmap["metadata"]["name"]:
        problems.append(("tuning.config", "must name the ConfigMap written beside it"))
    try:
        tc = yaml.safe_load(configmap["data"]["training_config.yaml"])["training_config"]
    except (KeyError, TypeError, yaml.YAMLError):
        problems.append(("training_config.yaml", "must hold a training_config mapping"))
        tc = {}
    known = {"ModelConfig", "QuantizationConfig", "LoraConfig", "TrainingArguments", "DatasetConfig", "DataCollator"}
    problems += [(f"training_config.{k}", f"unknown section; Kaito reads {', '.join(sorted(known))}")
                 for k in tc if k not in known]
    quant = tc.get("QuantizationConfig") or {}
    four, eight = quant.get("load_in_4bit"), quant.get("load_in_8bit")
    for key, value in (("load_in_4bit", four), ("load_in_8bit", eight)):
        if value is not None and not isinstance(value, bool):
            problems.append((f"QuantizationConfig.{key}", "must be true or false"))
    if four is True and eight is True:
        problems.append(("quantization.bits", "cannot load in both 4 and 8 bits"))
    if method == "lora" and (four is True or eight is True):
        problems.append(("quantization.bits", "Kaito's lora method must not load the base in 4 or 8 bits; use "
                                              "method qlora, or set quantization.bits to none"))
    if method == "qlora" and not (four is True or eight is True):
        problems.append(("quantization.bits", "Kaito's qlora method needs load_in_4bit or load_in_8bit; set "
                                              "quantization.bits to 4 or 8"))
    out_dir = str((tc.get("TrainingArguments") or {}).get("output_dir", "/mnt/results"))
    if not out_dir.startswith("/mnt/") or out_dir.rstrip("/") == "/mnt":
        problems.append(("TrainingArguments.output_dir", "must be a folder under /mnt"))
    if problems:
        raise HandoffError(list(dict.fromkeys(problems)))


def yaml_load(configmap: dict) -> dict:
    import yaml

    return yaml.safe_load(configmap["data"]["training_config.yaml"])["training_config"]


def build(config, options: KaitoOptions) -> Handoff:
    _refuse(config)
    files: dict = {}
    data_text = None
    if not options.input_urls:
        train, evals = _chat.conversations(config)
        for i, c in enumerate(train + evals, 1):
            bad = _chat.check_line(c, f"data line {i}")
            if bad:
                raise HandoffError([("data.source", bad[0])])
        data_text = _chat.jsonl(train + evals)
        if len(data_text.encode()) > CONFIGMAP_LIMIT:
            raise HandoffError([("kaito.input_urls", f"the data is {len(data_text.encode()):,} bytes, more than a "
                                                     "ConfigMap holds (1 MiB): host data/train.jsonl and pass "
                                                     "--opt input_urls=[https://...], or cap data.max_train_samples")])
    workspace, configmap, data_map = manifests(config, options)
    validate(workspace, configmap)
    files["workspace.yaml"] = dumps_yaml(workspace)
    files["training-config.yaml"] = dumps_yaml(configmap)
    if data_map:
        files["data/train.jsonl"] = data_text
        files["data-configmap.yaml"] = dumps_yaml({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": data_map, "namespace": options.namespace},
            "data": {"train.jsonl": data_text}})
    files["ftkit-config.yaml"] = config.to_yaml()
    t, d = config.training, config.distributed
    split = yaml_load(configmap)["DatasetConfig"]["train_test_split"]
    notes = [
        f"training.max_seq_length {t.max_seq_length}: Kaito's trainer takes the tokenizer's own limit",
        f"distributed (num_processes {d.num_processes}, zero_stage {d.zero_stage}): Kaito uses the GPUs of one "
        "node of instance_type, without DeepSpeed",
        "training.eval_steps and the task's metric: Kaito evaluates the loss on a split it draws itself "
        f"(train_test_split {split}), not on ftkit's evaluation rows",
    ]
    if config.task.name != "chat":
        notes.append(f"task {config.task.name}: converted to chat turns (instruction, answer)")
    apply = "kubectl apply -f training-config.yaml" + (" -f data-configmap.yaml" if data_map else "") + \
            " -f workspace.yaml"
    return Handoff(
        target="kaito", files=files, notes=notes, main="workspace.yaml",
        checks=["workspace.yaml against Kaito's v1beta1 Workspace CRD schema (unknown fields refused)",
                "Kaito's webhook rules: method lora|qlora, qlora needs 4/8-bit loading, lora forbids it, one input "
                "and one output, push secret with an output image, output_dir under /mnt"],
        submit_hint=f"{apply}\nkubectl get workspace {workspace['metadata']['name']} -w",
    )


def submit(folder: Path, options: KaitoOptions) -> str:
    import shutil
    import subprocess

    if shutil.which("kubectl") is None:
        raise HandoffError([("kubectl", "is not on PATH: install kubectl and point it at the cluster "
                                        "(az aks get-credentials ...), or apply the files by hand")])
    names = [n for n in ("training-config.yaml", "data-configmap.yaml", "workspace.yaml") if (Path(folder) / n).exists()]
    argv = ["kubectl", "apply"] + [a for n in names for a in ("-f", str(Path(folder) / n))]
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode:
        raise HandoffError([("kubectl", result.stderr.strip() or "kubectl apply failed")])
    return result.stdout.strip()


SPECS = [
    TargetSpec(
        name="kaito",
        title="Kaito (Kubernetes)",
        summary="Model as a platform on Kubernetes: a Kaito tuning Workspace with LoRA or QLoRA on a preset model.",
        kind="platform",
        options=KaitoOptions,
        build=build,
        submit=submit,
        carries="lora/qlora options, 4/8-bit loading, dtype, every Trainer setting ftkit has, seed, the data as "
                "chat JSONL",
        cannot=("max_seq_length, DeepSpeed/processes (one node, its GPUs), ftkit's eval split and metrics",
                "methods other than lora/qlora, lora with 4/8-bit loading, several nodes, resume_from: refused"),
        modules=("jsonschema",),
    )
]
