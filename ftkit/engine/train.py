"""``train(config, run_dir)``: one run from config to saved adapter, events all the way."""
from __future__ import annotations

import os
import resource
import traceback
from pathlib import Path
from typing import Callable, Optional

from ..control import Control
from ..diagnose import first_memory_setting
from ..errors import ConfigError
from ..events import JsonlWriter, fanout, make_event
from ..records import LABELS_FILE, write_json
from ..runstate import RunState, for_config
from ..store import RunRecord, disk_full, disk_full_reason, permission_denied, permission_reason
from .build import count_parameters  # noqa: F401  (also imported from here)
from .callbacks import EventCallback, StepHook, memory


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def explain(exc: BaseException, config) -> str:
    """A failure as one paragraph a user can act on."""
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ConfigError):
        return str(exc)
    if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
        return f"out of memory: {first_memory_setting(config)}. ({text})"
    return text


def training_arguments(config, output_dir: Path, generate: bool, has_eval: bool, deepspeed=None):
    from transformers import Seq2SeqTrainingArguments, TrainingArguments

    from .loading import device_type
    from .settings import training_argument_extras

    t = config.training
    on_gpu = device_type() == "cuda"
    precision = t.precision
    if precision == "auto":
        import torch

        precision = "bf16" if on_gpu and torch.cuda.is_bf16_supported() else "fp32"
    args_cls = Seq2SeqTrainingArguments if generate else TrainingArguments
    extra = {"predict_with_generate": True} if generate else {}
    # Transformers 5 renamed gradient checkpointing to activation checkpointing (the old name warns)
    ckpt = "activation_checkpointing" if "activation_checkpointing" in args_cls.__dataclass_fields__ else \
        "gradient_checkpointing"
    extra[ckpt] = t.gradient_checkpointing
    extra[f"{ckpt}_kwargs"] = {"use_reentrant": False} if t.gradient_checkpointing else None
    eval_every = t.eval_steps if has_eval and t.eval_steps else None
    extra.update(training_argument_extras(config, args_cls))
    return args_cls(
        output_dir=str(output_dir),
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size or t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,  # Transformers 5 reads a float < 1 as a ratio (pyproject's floor is 5.0)
        weight_decay=t.weight_decay,
        optim=t.optimizer,
        num_train_epochs=t.num_epochs,
        max_steps=t.max_steps or -1,
        max_grad_norm=t.max_grad_norm,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        seed=t.seed,
        data_seed=t.seed,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        eval_strategy="steps" if eval_every else "no",
        eval_steps=eval_every,
        save_strategy="steps" if t.save_steps else "no",
        save_steps=t.save_steps or 500,
        save_total_limit=t.save_total_limit,
        report_to=t.report_to or "none",
        use_cpu=not on_gpu,
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        remove_unused_columns=False,
        dataloader_num_workers=0,
        deepspeed=deepspeed,
        **extra,
    )


def train(config, run_dir, emit: Optional[Callable[[dict], None]] = None,
          control: Optional[Control] = None) -> dict:
    """Train ``config`` into ``run_dir``; returns the summary (also in ``summary.json``).

    Never raises for a training failure: it ends as ``failed`` with the reason
    in the summary and the final event, and everything written so far stays.
    """
    run_dir = Path(run_dir)
    is_main = _rank() == 0
    writer = JsonlWriter(run_dir / "events.jsonl") if is_main else None
    sink = fanout(*(s for s in (writer, emit) if s is not None))
    state = RunState(**for_config(config))
    # the process before the run: Python, torch, transformers
    baseline = {"rss_mb": memory()["rss_mb"], "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}

    def say(event: dict) -> bool:
        """Fold the event into the run's state and send it on; False for one that repeats the last."""
        if not state.apply(event):
            return False
        sink(event)
        return True

    status, reason = "finished", None
    try:
        say(make_event("status", status="starting", pid=os.getpid(), **memory()))
        stopped = _train(config, run_dir, say, control, state)
        if stopped:
            status, reason = "stopped", "stopped on request"
    except KeyboardInterrupt:
        status, reason = "stopped", "interrupted"
    except BaseException as exc:  # every failure ends as an event, never as a lost run
        status, reason = "failed", explain(exc, config)
        if disk_full(exc, run_dir):
            if is_main:  # half-written files are useless: their room lets the record be completed
                RunRecord(run_dir).drop_partial_writes()
            reason = f"{disk_full_reason(run_dir)} ({reason})"
        elif permission_denied(exc):
            reason = f"{permission_reason(run_dir, exc)} ({reason})"
        if is_main:
            say(make_event("log", level="error", message=traceback.format_exc()[-4000:]))
    summary = state.summary_for(run_dir.name, status, reason, config, **_safe_peak_check(config, state, baseline),
                                final_dir=str(run_dir / "final") if (run_dir / "final").exists() else None)
    if is_main:
        try:
            write_json(run_dir / "summary.json", summary)
        except OSError:  # a disk still full or a folder made read-only: the final event carries the summary
            pass
        say(make_event("ended", status=status, reason=reason, summary=summary))
    if writer is not None:
        try:
            writer.close()
        except OSError:
            pass
    return summary


def _train(config, run_dir: Path, say, control: Optional[Control], state: RunState) -> bool:
    import transformers
    from transformers import PrinterCallback, Seq2SeqTrainer, Trainer

    from ..tasks import TaskContext
    from .build import build, quiet
    from .loading import device_type
    from .settings import data_collator

    quiet()
    t = config.training
    task, method = config.task_spec, config.method_spec
    transformers.set_seed(t.seed)

    log = lambda message: say(make_event("log", level="info", message=message))  # noqa: E731
    deepspeed = _deepspeed_config(config)
    # ZeRO-3 partitions weights as they load only if DeepSpeed's config is known before from_pretrained:
    # TrainingArguments registers it (Transformers' documented order); the real arguments follow below
    zero3_loading = training_arguments(config, run_dir / "checkpoints", False, False, deepspeed=deepspeed) \
        if config.distributed.zero_stage == 3 else None
    built = build(config, world_size=int(os.environ.get("WORLD_SIZE", "1")),
                  local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    del zero3_loading
    model, tokenizer, ctx = built.model, built.tokenizer, built.context
    train_rows, eval_rows = built.train_rows, built.eval_rows
    log(f"data: {len(train_rows)} training and {len(eval_rows)} evaluation rows; model: {config.model_name}")
    for line in built.data_messages():  # rows cut or dropped by max_seq_length are never silent
        say(make_event("log", level="warning" if line.startswith("warning") else "info", message=line))
    state.info["data"] = built.data_summary()
    if _rank() == 0:  # predict and export read the head's labels here instead of the data
        write_json(run_dir / LABELS_FILE, {"labels": built.labels})
    trainable, total = count_parameters(model)
    state.info.update(trainable_params=trainable, total_params=total)  # before `started`, for an early failure
    log(f"method: {method.title}, {trainable:,} of {total:,} parameters train ({100 * trainable / total:.3f} %)")

    task_data = task.prepare(TaskContext(
        tokenizer=tokenizer, options=config.task_options, max_length=t.max_seq_length,
        train_rows=train_rows, eval_rows=eval_rows, model_config=model.config, seed=t.seed,
    ))
    has_eval = task_data.eval is not None and len(task_data.eval) > 0
    args = training_arguments(config, run_dir / "checkpoints", task_data.generate, has_eval, deepspeed=deepspeed)
    if task_data.generate:
        args.generation_max_length = task_data.generation_kwargs.get("max_length", t.max_seq_length)
        args.generation_num_beams = task_data.generation_kwargs.get("num_beams", 1)
    callback = EventCallback(
        say, state, control, task_data, tokenizer, task.metric, task.greater_is_better,
        run_dir=run_dir,
        started=dict(device=device_type(), trainable_params=trainable, total_params=total,
                     method=method.name, task=task.name, model=config.model_name,
                     train_rows=len(train_rows), eval_rows=len(eval_rows)),
    )
    callbacks = [callback] + ([StepHook(ctx.on_step, model)] if ctx.on_step else [])
    trainer_cls = Seq2SeqTrainer if task_data.generate else Trainer
    trainer = trainer_cls(
        model=model, args=args, train_dataset=task_data.train,
        eval_dataset=task_data.eval if has_eval else None,
        data_collator=data_collator(config, task_data.collator, model), processing_class=tokenizer,
        compute_metrics=task_data.compute_metrics if has_eval else None,
        preprocess_logits_for_metrics=task_data.preprocess_logits,
        callbacks=callbacks,
    )
    trainer.remove_callback(PrinterCallback)  # events replace its printed dicts
    trainer.train(resume_from_checkpoint=_checkpoint(config))
    if has_eval and not callback.stopped and callback.last_eval_step != trainer.state.global_step:
        trainer.evaluate()
    final = run_dir / "final"
    trainer.save_model(str(final))
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(str(final))
        log(f"saved {'adapter' if method.kind != 'full' else 'model'} to {final}")
    return callback.stopped


def _checkpoint(config) -> Optional[str]:
    """The checkpoint folder ``resume_from`` names (a folder, or a run id: its latest): ``launch.resolve_checkpoint``."""
    if not config.resume_from:
        return None
    from ..launch import resolve_checkpoint
    from ..store import runs_root

    return str(resolve_checkpoint(config.resume_from, runs_root(config.runs_dir)))


def _deepspeed_config(config) -> Optional[dict]:
    if config.distributed.zero_stage is None:
        return None
    from ..zero import render

    return render(config)


def _peak_check(config, state: RunState, baseline: dict) -> dict:
    """The estimator's predicted peak for this run's device next to the measured one (MB): GPU memory
    allocated by torch on a GPU, RSS above the process's baseline on a CPU."""
    import torch

    from ..estimator import predicted_peak_mb

    start_rss = baseline.get("rss_mb")
    cuda = torch.cuda.is_available()
    try:
        device = torch.cuda.get_device_name() if cuda else "CPU"
        predicted = round(predicted_peak_mb(config, device, int(os.environ.get("WORLD_SIZE", "1"))), 1)
    except Exception:  # an architecture the estimator cannot describe: no prediction, never a failed run
        predicted = None
    if cuda:
        measured = round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_initialized() else None
    else:
        # the process's lifetime peak is this run's only if it grew during the run (a kernel may
        # have trained before); otherwise the peak sampled at each step stands in
        lifetime = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peak = lifetime if lifetime > baseline.get("maxrss_mb", 0) else state.peak_rss_mb
        measured = round(peak - start_rss, 1) if start_rss and peak else None
    # run_peak_mb: what the run itself added (see runstate.SUMMARY_KEYS), to hold against predicted_peak_mb
    return {"baseline_rss_mb": start_rss, "predicted_peak_mb": predicted, "run_peak_mb": measured}


def _safe_peak_check(config, state: RunState, baseline: dict) -> dict:
    try:
        return _peak_check(config, state, baseline)
    except Exception:  # a summary is written whatever the estimator thinks
        return {}
