"""The Trainer callback that turns training into events and obeys stop/pause/save requests."""
from __future__ import annotations

import time
from typing import Any, Callable, Optional

import psutil
from transformers import TrainerCallback

from ..control import REQUESTS, Control
from ..events import make_event
from ..records import read_json, update_rank
from ..runstate import RunState


def memory() -> dict:
    """Process RSS and, on a GPU, allocated/reserved/peak CUDA memory, in MB."""
    import torch

    out = {"rss_mb": round(psutil.Process().memory_info().rss / 2**20, 1)}
    if torch.cuda.is_available():
        out.update(
            cuda_allocated_mb=round(torch.cuda.memory_allocated() / 2**20, 1),
            cuda_reserved_mb=round(torch.cuda.memory_reserved() / 2**20, 1),
            cuda_peak_mb=round(torch.cuda.max_memory_allocated() / 2**20, 1),
        )
    return out


class EventCallback(TrainerCallback):
    """Emits step/eval/checkpoint events from rank 0 and applies control requests on every rank."""

    def __init__(self, emit: Callable[[dict], Any], state: RunState, control: Optional[Control],
                 task_data: Any, tokenizer: Any, metric: str, greater_is_better: bool, started: dict,
                 run_dir: Any = None):
        self.emit = emit
        self.state = state
        self.last_eval_step: Optional[int] = None
        self.ctl = control
        self.task_data = task_data
        self.tokenizer = tokenizer
        self.metric = metric
        self.greater = greater_is_better
        self.started_info = started
        self.stopped = False
        self.run_dir = run_dir
        self._last_log: Optional[tuple[float, int, int]] = None

    # ---- lifecycle --------------------------------------------------------

    def on_train_begin(self, args, state, control, **kw):
        self._rank_memory(args, state)
        self.state.max_steps = state.max_steps
        self._last_log = (time.time(), state.global_step, state.num_input_tokens_seen or 0)
        if state.is_world_process_zero:
            self.emit(make_event("started", max_steps=state.max_steps, start_step=state.global_step,
                                 world_size=args.world_size, metric=self.metric, greater_is_better=self.greater,
                                 **self.started_info, **memory()))

    def on_train_end(self, args, state, control, **kw):
        self.state.step = max(self.state.step, state.global_step)

    def on_step_end(self, args, state, control, **kw):
        if state.global_step >= state.max_steps:
            control.should_log = True  # the last step always reports, so curves and bars end at max_steps
        if self.ctl is None:
            return
        flags = self._requests(args)
        save = flags["save"]
        if flags["pause"] and not flags["stop"]:
            if state.is_world_process_zero:
                self.emit(make_event("status", status="paused", step=state.global_step))
            while flags["pause"] and not flags["stop"]:
                time.sleep(0.1)
                flags = self._requests(args)
                save = save or flags["save"]  # a save-now asked while paused is kept, not dropped
            if state.is_world_process_zero:
                self.emit(make_event("status", status="running", step=state.global_step))
        if save:
            control.should_save = True
        if flags["stop"]:
            self.stopped = True
            control.should_save = True
            control.should_training_stop = True
            if state.is_world_process_zero:
                self.emit(make_event("status", status="stopping", step=state.global_step))

    def _requests(self, args) -> dict:
        """Rank 0's view of the requests, shared with every rank so they stop at the same step."""
        # only rank 0 reads (and consumes) the requests; the others take its view below
        flags = {name: args.process_index == 0 and self.ctl.wanted(name) for name in REQUESTS}
        if flags["save"]:
            self.ctl.consume("save")
        if args.world_size > 1:
            import torch
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                tensor = torch.tensor([float(flags[n]) for n in REQUESTS])
                dist.broadcast(tensor, src=0)
                flags = {n: bool(v) for n, v in zip(REQUESTS, tensor.tolist())}
        return flags

    # ---- metrics ----------------------------------------------------------

    def _rank_memory(self, args, state) -> dict:
        """Write this rank's memory to ``run_dir/ranks/rank-N.json``; rank 0 gathers every rank's."""
        if self.run_dir is None:
            return {}
        import os
        import resource

        rank = args.process_index
        rss = psutil.Process().memory_info().rss / 2**20
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        try:
            update_rank(self.run_dir, rank, rank=rank, pid=os.getpid(), step=state.global_step,
                        rss_mb=round(rss, 1), peak_rss_mb=round(max(peak, rss), 1))
        except OSError:
            return {}
        if rank != 0:
            return {}
        from ..records import rank_file

        now, peaks, nodes = [], [], []
        for r in range(args.world_size):
            data = read_json(rank_file(self.run_dir, r)) or {}
            now.append(data.get("rss_mb"))
            peaks.append(data.get("peak_rss_mb"))
            nodes.append(data.get("node"))
        out = {"rank_rss_mb": now, "rank_peak_rss_mb": peaks}
        if any(nodes):  # several machines: which one each rank runs on
            out["rank_nodes"] = nodes
        return out

    def on_log(self, args, state, control, logs=None, **kw):
        if not logs or "loss" not in logs:
            return
        ranks = self._rank_memory(args, state)
        if not state.is_world_process_zero:
            return
        now, tokens = time.time(), state.num_input_tokens_seen or 0
        t0, step0, tokens0 = self._last_log or (now, state.global_step, tokens)
        dt = max(now - t0, 1e-9)
        steps = state.global_step - step0
        batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
        event = make_event(
            "step",
            step=state.global_step,
            max_steps=state.max_steps,
            epoch=round(state.epoch or 0.0, 4),
            loss=logs["loss"],
            learning_rate=logs.get("learning_rate"),
            grad_norm=logs.get("grad_norm"),
            tokens=tokens,
            tokens_per_s=round((tokens - tokens0) / dt, 1),
            samples_per_s=round(steps * batch / dt, 2),
            s_per_step=round(dt / steps, 4) if steps else None,
            elapsed=round(now - (self.state.started_time or now), 2),
            **memory(),
            **ranks,
        )
        self._last_log = (now, state.global_step, tokens)
        self.emit(event)

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kw):
        if not state.is_world_process_zero or not metrics:
            return
        self.last_eval_step = state.global_step
        clean = {k[5:] if k.startswith("eval_") else k: v for k, v in metrics.items()
                 if not k.endswith(("_runtime", "_per_second")) and k not in ("epoch", "num_input_tokens_seen")}
        if self.task_data.from_loss and "loss" in clean:
            clean.update(self.task_data.from_loss(clean["loss"]))
        samples = None
        if self.task_data.samples is not None and model is not None:
            was_training = model.training
            model.eval()
            try:
                import torch

                with torch.no_grad():
                    samples = self.task_data.samples(model, self.tokenizer)
            finally:
                model.train(was_training)
            if samples and self.task_data.sample_metrics is not None:
                clean.update(self.task_data.sample_metrics(samples))
        event = make_event("eval", step=state.global_step, epoch=round(state.epoch or 0.0, 4),
                           metrics=clean, **memory())
        fresh = self.emit(event) is not False  # the run's state drops an evaluation reported twice
        if samples is not None and fresh:
            self.emit(make_event("sample", step=state.global_step, samples=samples))

    def on_save(self, args, state, control, **kw):
        if state.is_world_process_zero:
            path = f"{args.output_dir}/checkpoint-{state.global_step}"
            self.emit(make_event("checkpoint", step=state.global_step, path=path))


class StepHook(TrainerCallback):
    """Calls a method's per-step hook after each optimizer step (AdaLoRA's budget update)."""

    def __init__(self, hook: Callable[[Any, int], None], model: Any):
        self.hook = hook
        self.model = model

    def on_optimizer_step(self, args, state, control, **kw):
        self.hook(self.model, state.global_step)
