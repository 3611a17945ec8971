"""peft tuners ftkit does not offer, and why: the CLI and README list them."""

UNSUPPORTED = {
    "xlora": "X-LoRA mixes LoRA adapters that were trained before; it needs saved adapters to start from, "
    "use_cache=False, and barely learns on its own. Train LoRA adapters first, then mix them with peft directly.",
    "poly": "Poly (Polytropon / MHR) routes per task and needs a task_ids tensor in every batch, which ftkit's "
    "tasks do not produce; it also cannot be merged.",
    "multitask_prompt_tuning": "Multitask prompt tuning needs a task_ids tensor in every batch and source-task "
    "prompts to start from; ftkit trains one task per run.",
}
