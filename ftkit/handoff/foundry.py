"""Azure AI Foundry serverless fine-tuning (model as a service): chat JSONL files and a job request.

The service fine-tunes Phi-3-mini and Phi-3-medium for you; ftkit hands it
the run's data as chat conversations and the few hyperparameters it takes.
The request is checked against the official ``openai`` SDK's fine-tuning
job parameter types (``JobCreateParams``), the files line by line.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

from . import _chat
from ._base import Handoff, HandoffError, TargetSpec, dumps_json
from ..schema import Options, field

#: the models the service fine-tunes serverlessly, and the tokens each one's context holds
MODELS = {
    "Phi-3-mini-4k-instruct": 4096,
    "Phi-3-mini-128k-instruct": 131072,
    "Phi-3-medium-4k-instruct": 4096,
    "Phi-3-medium-128k-instruct": 131072,
}
MIN_EXAMPLES = 10  # fewer training examples are rejected by the service
MAX_FILE_BYTES = 512 * 1024 * 1024  # largest training file the service accepts
CARRIED_METHODS = ("lora", "qlora")  # the service trains a LoRA adapter of its own choosing


class FoundryOptions(Options):
    model: Optional[str] = field(
        None, "Model the service tunes: " + ", ".join(MODELS) + ". Empty: the run's model (e.g. "
        "microsoft/Phi-3-mini-4k-instruct).")
    suffix: Optional[str] = field(None, "Added to the fine-tuned model's name; empty: the run's name.", max_length=64)
    n_epochs: Optional[int] = field(None, "Passes over the data; empty: the run's training.num_epochs.", ge=1, le=50)
    batch_size: Optional[int] = field(
        None, "Examples per step; empty: the run's effective batch (batch_size x accumulation x processes).",
        ge=1, le=1024)
    learning_rate_multiplier: float = field(
        1.0, "Scales the service's own learning rate (it takes no absolute rate).", gt=0, le=10)
    subscription_id: Optional[str] = field(None, "For --submit: the project's subscription; empty: "
                                                 "$AZURE_SUBSCRIPTION_ID.", advanced=True)
    resource_group: Optional[str] = field(None, "For --submit: resource group; empty: $AZURE_RESOURCE_GROUP.",
                                          advanced=True)
    workspace: Optional[str] = field(None, "For --submit: the Foundry project (workspace) name; empty: "
                                           "$AZUREML_WORKSPACE_NAME.", advanced=True)


def service_model(config, options: FoundryOptions) -> str:
    name = options.model or config.model_name
    short = name.rstrip("/").split("/")[-1]
    for known in MODELS:
        if short.lower() == known.lower():
            return known
    field_path = "foundry.model" if options.model else "model.name_or_path"
    raise HandoffError([(field_path, f"{name!r} is not a model Azure AI Foundry fine-tunes serverlessly; "
                                     f"choose one of {', '.join(MODELS)} (--opt model=...)")])


def request(config, options: FoundryOptions, model: str) -> dict:
    t, d = config.training, config.distributed
    problems = []
    if t.max_steps and options.n_epochs is None:
        problems.append(("training.max_steps", "the service counts epochs, not steps; set max_steps to none and "
                                               "training.num_epochs (or --opt n_epochs)"))
    epochs = options.n_epochs
    if epochs is None:
        if t.num_epochs != int(t.num_epochs):
            problems.append(("training.num_epochs", f"{t.num_epochs} is not a whole number of epochs, which is "
                                                    "all the service runs; round it or set --opt n_epochs"))
        epochs = max(1, int(t.num_epochs))
    if problems:
        raise HandoffError(problems)
    batch = options.batch_size or t.batch_size * t.gradient_accumulation_steps * d.num_processes * d.num_nodes
    req = {
        "model": model,
        "training_file": "training.jsonl",
        "validation_file": "validation.jsonl",
        "hyperparameters": {"n_epochs": epochs, "batch_size": batch,
                            "learning_rate_multiplier": options.learning_rate_multiplier},
        "suffix": options.suffix or _suffix(config),
        "seed": t.seed,
    }
    validate_request(req)
    return req


def _suffix(config) -> str:
    import re

    text = config.name or f"ftkit-{config.task.name}"
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text)[:64]


def validate_request(req: dict) -> None:
    """Check ``req`` against openai's ``JobCreateParams`` TypedDict; unknown keys are refused too."""
    from openai.types.fine_tuning.job_create_params import Hyperparameters, JobCreateParams
    from pydantic import TypeAdapter, ValidationError

    problems = []
    for where, data, typed in (("", req, JobCreateParams), ("hyperparameters.", req.get("hyperparameters"), Hyperparameters)):
        if isinstance(data, dict):
            known = set(typed.__required_keys__) | set(typed.__optional_keys__)
            problems += [(f"request.{where}{k}", f"is not a fine-tuning job parameter; known: {', '.join(sorted(known))}")
                         for k in data if k not in known]
    try:
        TypeAdapter(JobCreateParams).validate_python(req)
    except ValidationError as exc:
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("Literal", "function")))
            problems.append((f"request.{loc}", err["msg"]))
    for key in ("n_epochs", "batch_size"):
        value = (req.get("hyperparameters") or {}).get(key)
        if isinstance(value, bool) or (isinstance(value, (int, float)) and value < 1):
            problems.append((f"request.hyperparameters.{key}", "must be a whole number >= 1 or 'auto'"))
    if problems:
        raise HandoffError(list(dict.fromkeys(problems)))


def check_file(lines: list[dict], name: str, context_tokens: int, minimum: int = 1) -> None:
    """Every line's messages and length; at most the first 5 problems are reported."""
    problems = []
    for i, row in enumerate(lines, 1):
        messages = row.get("messages") if isinstance(row, dict) else None
        found = [("data", p) for p in _chat.check_line(messages, f"{name} line {i}")]
        if not found:
            tokens = _chat.estimate_tokens(messages)
            if tokens > context_tokens:
                found.append(("training.max_seq_length", f"{name} line {i}: about {tokens} tokens, over the "
                                                         f"{context_tokens} the model's context holds; shorten it "
                                                         "or pick a 128k model"))
        problems += found
        if len(problems) >= 5:
            break
    if len(lines) < minimum:
        problems.append(("data.source", f"{name} has {len(lines)} examples; the service needs at least {minimum}"))
    if problems:
        raise HandoffError(problems)


def build(config, options: FoundryOptions) -> Handoff:
    problems = []
    if config.method.name not in CARRIED_METHODS:
        problems.append(("method.name", f"the service trains a LoRA adapter of its own; {config.method.name} would "
                                        f"not be what runs there: use {' or '.join(CARRIED_METHODS)}, or hand the "
                                        "run to azureml or kaito"))
    if config.resume_from:
        problems.append(("resume_from", "the service starts from the base model only; set resume_from to none"))
    if problems:
        raise HandoffError(problems)
    model = service_model(config, options)
    req = request(config, options, model)
    train, evals = _chat.conversations(config)
    text_train, text_eval = _chat.jsonl(train), _chat.jsonl(evals)
    for name, text, minimum in (("training.jsonl", text_train, MIN_EXAMPLES), ("validation.jsonl", text_eval, 1)):
        check_file([json.loads(line) for line in text.splitlines()], name, MODELS[model], minimum)
        if len(text.encode()) > MAX_FILE_BYTES:
            raise HandoffError([("data.max_train_samples", f"{name} is over the service's 512 MB; cap the rows")])
    notes = [
        f"method.{config.method.name} options (r, lora_alpha, dropout, target_modules): the service picks its "
        "own adapter",
        f"training.learning_rate {config.training.learning_rate}: the service takes only a multiplier of its own "
        f"rate (learning_rate_multiplier {options.learning_rate_multiplier})",
        "training.lr_scheduler, warmup_ratio, weight_decay, optimizer, max_grad_norm, precision, "
        "gradient_checkpointing, logging/eval/save steps: chosen by the service",
        f"training.max_seq_length {config.training.max_seq_length}: examples are not truncated; each must fit "
        f"the model's {MODELS[model]} tokens (checked at about 4 characters a token)",
        "quantization and distributed: the service chooses its hardware",
    ]
    if config.training.max_steps:
        notes.append(f"training.max_steps {config.training.max_steps}: replaced by n_epochs {options.n_epochs} "
                     "(--opt n_epochs)")
    if config.task.name != "chat":
        notes.append(f"task {config.task.name}: converted to chat turns (instruction, answer); the service "
                     f"reports loss, not {config.task_spec.metric}")
    files = {"training.jsonl": text_train, "validation.jsonl": text_eval, "request.json": dumps_json(req),
             "ftkit-config.yaml": config.to_yaml()}
    return Handoff(
        target="foundry", files=files, notes=notes, main="request.json",
        checks=[f"{len(train)} training and {len(evals)} validation conversations: roles, empty turns, an "
                f"assistant answer last, at most {MODELS[model]} tokens each, at least {MIN_EXAMPLES} examples",
                "request.json against openai.types.fine_tuning.JobCreateParams"],
        submit_hint=("the same ftkit handoff command with --submit (uploads both files and creates the job in "
                     "your Foundry project)\nor in the Foundry portal: Fine-tuning > Fine-tune model > "
                     f"{model}, upload training.jsonl and validation.jsonl, and enter the values of request.json"),
    )


def submit(folder: Path, options: FoundryOptions) -> str:
    from . import _azure

    ml_client = _azure.client(options)
    from azure.ai.ml import Input
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.finetuning import FineTuningTaskType, create_finetuning_job

    req = json.loads((Path(folder) / "request.json").read_text())
    hp = {k: str(v) for k, v in req["hyperparameters"].items()}  # the service's names: n_epochs, batch_size, ...
    job = create_finetuning_job(
        model=f"azureml://registries/azureml/models/{req['model']}",
        task=FineTuningTaskType.CHAT_COMPLETION,
        training_data=Input(type=AssetTypes.URI_FILE, path=str(Path(folder) / req["training_file"])),
        validation_data=Input(type=AssetTypes.URI_FILE, path=str(Path(folder) / req["validation_file"])),
        hyperparameters=hp,
        output_model_name_prefix=req.get("suffix") or "ftkit",
    )
    created = ml_client.jobs.create_or_update(job)
    return f"submitted fine-tuning job {created.name}: {getattr(created, 'studio_url', '')}"


SPECS = [
    TargetSpec(
        name="foundry",
        title="Azure AI Foundry (serverless)",
        summary="Model as a service: the service fine-tunes Phi-3-mini or Phi-3-medium from chat JSONL files.",
        kind="service",
        options=FoundryOptions,
        build=build,
        submit=submit,
        carries="the data (any task, as chat turns), epochs, effective batch size, seed, a name suffix",
        cannot=("the method's options (rank, alpha, targets): the service picks its own LoRA",
                "an absolute learning rate, schedule, optimizer, precision, sequence length, steps",
                "methods other than lora/qlora, max_steps, fractional epochs, resume_from: refused"),
        modules=("openai",),
    )
]
