"""Azure Machine Learning (model as a platform): a command job built with Microsoft's ``azure-ai-ml`` SDK.

The job runs the same ftkit worker on the cluster: the code snapshot holds
ftkit and the run's config, the environment installs the versions pinned
here, the data files travel as ``uri_file``/``uri_folder`` inputs, and the
run folder is the job's ``run`` output. Several GPUs and nodes run the way
Azure's own DeepSpeed samples run them: a ``pytorch`` distribution starts
``process_count_per_instance`` processes on each of ``instance_count`` nodes
with RANK/WORLD_SIZE/MASTER_ADDR set, and each process initialises
DeepSpeed from those (the job schema has no DeepSpeed type; no hostfile,
no ssh). ``ds_config.json`` in the snapshot is the ZeRO config the worker
renders from the run's settings.
"""
from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path
from typing import Optional

from ._base import Handoff, HandoffError, TargetSpec, dumps_yaml, local_path
from ..schema import Options, field

#: Azure's curated CUDA base image with OpenMPI, used by its distributed training samples
DEFAULT_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.8-cudnn8-ubuntu22.04:latest"
#: what the worker imports, besides ftkit itself
BASE_PACKAGES = ["torch", "transformers", "peft", "accelerate", "datasets", "safetensors", "pydantic", "pyyaml",
                 "psutil", "scikit-learn", "sacrebleu", "seqeval"]


class AzureMLOptions(Options):
    compute: str = field("gpu-cluster", "Name of the workspace's GPU compute cluster the job runs on.", min_length=1)
    experiment_name: Optional[str] = field(None, "Experiment the job is filed under; empty: ftkit-<task>.")
    image: str = field(DEFAULT_IMAGE, "Docker base image; the pinned requirements are installed on top.",
                       advanced=True)
    instance_type: Optional[str] = field(None, "VM size for serverless compute (e.g. Standard_NC24ads_A100_v4); "
                                               "empty: the cluster's.", advanced=True)
    subscription_id: Optional[str] = field(None, "For --submit; empty: $AZURE_SUBSCRIPTION_ID.", advanced=True)
    resource_group: Optional[str] = field(None, "For --submit; empty: $AZURE_RESOURCE_GROUP.", advanced=True)
    workspace: Optional[str] = field(None, "For --submit; empty: $AZUREML_WORKSPACE_NAME.", advanced=True)


def pins(config, versions: Optional[dict[str, str]] = None) -> list[str]:
    """``package==version`` for everything the run needs, as installed here (or as ``versions`` says)."""
    wanted = list(BASE_PACKAGES)
    if config.distributed.zero_stage is not None:
        wanted.append("deepspeed")
    if config.bits or config.training.optimizer in ("adamw_bnb_8bit", "paged_adamw_8bit", "paged_adamw_32bit"):
        wanted.append("bitsandbytes")
    wanted += [t for t in config.training.report_to]
    out = []
    for name in wanted:
        version = (versions or {}).get(name)
        if version is None:
            try:
                version = metadata.version(name)
            except metadata.PackageNotFoundError:
                version = None
        out.append(f"{name}=={version.split('+')[0]}" if version else name)
    return out


def _refuse(config) -> None:
    problems = []
    if config.resume_from:
        problems.append(("resume_from", "a local checkpoint is not uploaded with the job; set resume_from to none"))
    if config.model_name.startswith(("/", "./", "../", "~")) and local_path(config.model_name) is None:
        problems.append(("model.name_or_path", f"{config.model_name!r} does not exist here, so it cannot be "
                                               "uploaded; give a folder that exists or a Hub id"))
    for key in ("source", "eval_source"):
        value = getattr(config.data, key)
        if value and value != "builtin" and local_path(value) is None and "://" not in value:
            problems.append((f"data.{key}", f"{value!r} does not exist here, so it cannot be uploaded; give a file "
                                            "or folder that exists, or an azureml:// or https:// URI"))
    if problems:
        raise HandoffError(problems)


def _input(value: str, dest: str, files: dict):
    """An ``Input`` for a data file or folder; a local one is copied to ``dest/`` beside job.yml."""
    from azure.ai.ml import Input
    from azure.ai.ml.constants import AssetTypes

    if "://" in value:  # already in the cloud
        kind = AssetTypes.URI_FOLDER if value.endswith("/") else AssetTypes.URI_FILE
        return Input(type=kind, path=value)
    path = local_path(value)
    rel = f"{dest}/{path.name}"
    files[rel] = path
    return Input(type=AssetTypes.URI_FOLDER if path.is_dir() else AssetTypes.URI_FILE, path=f"./{rel}")


def job(config, options: AzureMLOptions, files: dict, versions: Optional[dict] = None):
    """The ``azure.ai.ml`` command job for ``config``; adds the files it references to ``files``."""
    from azure.ai.ml import Output, PyTorchDistribution, command
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Environment

    from ..launch import processes

    inputs, sets = {}, []
    for key, name in (("source", "data_source"), ("eval_source", "data_eval")):
        value = getattr(config.data, key)
        if value and value != "builtin":
            inputs[name] = _input(value, "data", files)
            sets.append(f"--set data.{key}=${{{{inputs.{name}}}}}")
    if local_path(config.model_name):
        inputs["model"] = _input(config.model_name, "model", files)
        sets.append("--set model.name_or_path=${{inputs.model}}")
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    environment = Environment(
        image=options.image,
        conda_file={"name": "ftkit", "channels": ["conda-forge"],
                    "dependencies": [f"python={py}", "pip", {"pip": pins(config, versions)}]},
    )
    d = config.distributed
    cmd = " ".join(["python -m ftkit.handoff._entry ftkit-config.json ${{outputs.run}}", *sets])
    built = command(
        code="./src",
        command=cmd,
        inputs=inputs or None,
        outputs={"run": Output(type=AssetTypes.URI_FOLDER, mode="rw_mount")},
        environment=environment,
        environment_variables={"PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"},
        distribution=PyTorchDistribution(process_count_per_instance=processes(config)),
        instance_count=d.num_nodes,
        instance_type=options.instance_type,
        compute=options.compute,
        experiment_name=options.experiment_name or f"ftkit-{config.task.name}",
        display_name=config.name or f"{config.method.name}-{config.task.name}",
        tags={"ftkit_method": config.method.name, "ftkit_task": config.task.name},
    )
    return built


SCHEMA = "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json"


def dump(built) -> str:
    """The job as the YAML ``az ml job create`` and ``load_job`` read.

    The SDK's own dump resolves local paths against the current folder and
    writes the ones it cannot find as workspace assets (``azureml:src``); the
    files only exist once written, so the local paths are put back as given.
    """
    job = built._to_job()
    data = {"$schema": SCHEMA, **job._to_dict()}
    data["code"] = "./src"
    for name, value in (built.inputs or {}).items():
        path = getattr(value, "path", None) or getattr(getattr(value, "_data", None), "path", None)
        if path and str(path).startswith("./"):
            data["inputs"][name]["path"] = str(path)
    import json

    plain = _pruned(json.loads(json.dumps(data)))  # OrderedDicts and SDK values to plain data
    for key in ("name", "version"):  # an anonymous environment: the SDK names it from its hash on submit
        plain.get("environment", {}).pop(key, None)
    return dumps_yaml(plain)


def _pruned(data):
    """``data`` without empty mappings and None values (the SDK's defaults), recursively."""
    if isinstance(data, dict):
        out = {k: _pruned(v) for k, v in data.items()}
        return {k: v for k, v in out.items() if v not in ({}, None)}
    if isinstance(data, list):
        return [_pruned(v) for v in data]
    return data


def build(config, options: AzureMLOptions) -> Handoff:
    import ftkit

    _refuse(config)
    files: dict = {}
    built = job(config, options, files)
    d = config.distributed
    files = {"job.yml": dump(built), "src/ftkit-config.json": config.to_json(), "src/ftkit": Path(ftkit.__file__).parent,
             "requirements.txt": "\n".join(pins(config)) + "\n", **files}
    if d.zero_stage is not None:
        from ..zero import render
        from ._base import dumps_json

        files["src/ds_config.json"] = dumps_json(render(config, cuda=True))
    notes = [
        "distributed.launcher, master_addr, master_port, node_rank, hostfile: Azure ML starts the processes "
        "and sets RANK, WORLD_SIZE and MASTER_ADDR itself",
        "runs_dir: the run folder is the job's `run` output (events, checkpoints, adapter)",
    ]
    if d.gpus:
        notes.append(f"distributed.gpus {d.gpus}: each process takes the GPU of its LOCAL_RANK on the node")
    if not local_path(config.model_name) and not config.model_name.startswith("builtin:"):
        notes.append(f"model {config.model_name}: downloaded from the Hugging Face Hub on the cluster (set "
                     "HF_TOKEN in the job's environment_variables for a gated model)")
    if d.nvme_path:
        notes.append(f"distributed.nvme_path {d.nvme_path}: must exist on every node")
    return Handoff(
        target="azureml", files=files, notes=notes, main="job.yml",
        checks=["job.yml reloads with azure.ai.ml.load_job"],
        submit_hint=("az ml job create --file job.yml --resource-group RG --workspace-name WS\n"
                     "or: the same ftkit handoff command with --submit (MLClient)"),
    )


def submit(folder: Path, options: AzureMLOptions) -> str:
    from . import _azure

    ml_client = _azure.client(options)
    from azure.ai.ml import load_job

    created = ml_client.jobs.create_or_update(load_job(Path(folder) / "job.yml"))
    return f"submitted job {created.name}: {getattr(created, 'studio_url', '')}"


SPECS = [
    TargetSpec(
        name="azureml",
        title="Azure Machine Learning",
        summary="Model as a platform: a command job on your GPU cluster running the same ftkit worker.",
        kind="platform",
        options=AzureMLOptions,
        build=build,
        submit=submit,
        carries="everything: the config as is, processes per node and nodes, ZeRO stage and offload, data files, "
                "pinned package versions",
        cannot=("launcher, master address/port, node rank, hostfile: Azure ML sets them",
                "resume_from a local checkpoint: refused"),
        modules=("azure.ai.ml",),
    )
]
