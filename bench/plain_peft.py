"""The baseline: a causal-LM fine-tune written straight from the Transformers and PEFT docs.

    python bench/plain_peft.py --model DIR --train train.jsonl --eval eval.jsonl --out OUT [--method lora]

Trainer + TrainingArguments, LoraConfig + get_peft_model (DoRA: ``use_dora``;
QLoRA: a 4-bit ``BitsAndBytesConfig`` and ``prepare_model_for_kbit_training``),
``datasets`` for the JSONL files, ``DataCollatorForLanguageModeling``: what a
user writes without ftkit, to compare ftkit against on the same model, rows,
steps and seed. Each text gets the tokenizer's bos and eos, as ftkit adds them.
It prints one JSON line with what it measured (wall and training seconds,
tokens, losses, peak memory) so the benchmarks can read it.
"""
from __future__ import annotations

import argparse
import json
import resource
import time


def main(argv=None) -> dict:
    t_start = time.perf_counter()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--train", required=True)
    p.add_argument("--eval")
    p.add_argument("--out", required=True)
    p.add_argument("--method", default="lora", choices=["lora", "dora", "qlora", "full"])
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--logging-steps", type=int, default=5)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--r", type=int, default=8)
    p.add_argument("--bf16", action="store_true", help="bf16 weights and mixed precision (GPUs)")
    p.add_argument("--packing", action="store_true", help="concatenate texts and cut them into max-length blocks")
    p.add_argument("--padding-free", action="store_true", help="DataCollatorWithFlattening (needs flash attention)")
    p.add_argument("--liger", action="store_true", help="Liger kernels (TrainingArguments.use_liger_kernel)")
    p.add_argument("--compile", action="store_true", help="TrainingArguments.torch_compile")
    p.add_argument("--attn", default=None, help="attn_implementation, e.g. sdpa or flash_attention_2")
    args = p.parse_args(argv)

    import torch
    from datasets import load_dataset
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import (AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig,
                              DataCollatorForLanguageModeling, DataCollatorWithFlattening, Trainer,
                              TrainerCallback, TrainingArguments, set_seed)

    set_seed(args.seed)
    cuda = torch.cuda.is_available()
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    load = {"dtype": torch.bfloat16 if args.bf16 else torch.float32}
    if args.attn:
        load["attn_implementation"] = args.attn
    if args.method == "qlora":
        load["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if args.bf16 else torch.float32)
        load["device_map"] = {"": 0 if cuda else "cpu"}
    model = AutoModelForCausalLM.from_pretrained(args.model, **load)
    if args.method == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    if args.method != "full":
        lora = LoraConfig(r=args.r, lora_alpha=2 * args.r, lora_dropout=0.05, task_type="CAUSAL_LM",
                          use_dora=args.method == "dora")
        model = get_peft_model(model, lora)

    files = {"train": args.train, **({"eval": args.eval} if args.eval else {})}
    data = load_dataset("json", data_files=files)

    def tokenize(batch):
        texts = [tokenizer.bos_token + t + tokenizer.eos_token for t in batch["text"]]
        return tokenizer(texts, truncation=True, max_length=args.max_length)

    data = data.map(tokenize, batched=True, remove_columns=["text"])
    if args.packing:
        block = args.max_length

        def group(batch):
            ids = sum(batch["input_ids"], [])
            n = len(ids) // block * block
            return {"input_ids": [ids[i:i + block] for i in range(0, n, block)]}

        data["train"] = data["train"].map(group, batched=True, remove_columns=data["train"].column_names)
    if args.padding_free:
        collator = DataCollatorWithFlattening()
    else:
        collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)

    tokens = {"n": 0}
    marks: list = []

    def counting(features):  # measurement only: non-padding tokens of each batch built (one batch ahead of training)
        batch = collator(features)
        if args.padding_free:  # with a KV cache transformers looks for no packed examples: they would mix
            batch["use_cache"] = False
        tokens["n"] += sum(len(f["input_ids"]) for f in features)
        return batch

    class Clock(TrainerCallback):  # measurement only: when training began and each optimizer step ended
        def on_train_begin(self, a, state, control, **kw):
            marks.append((time.perf_counter(), 0))

        def on_step_end(self, a, state, control, **kw):
            if cuda:
                torch.cuda.synchronize()
            marks.append((time.perf_counter(), tokens["n"]))

    training_args = TrainingArguments(
        output_dir=args.out,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        learning_rate=args.lr,
        max_steps=args.steps,
        logging_steps=args.logging_steps,
        seed=args.seed,
        bf16=args.bf16,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=not cuda,
        use_liger_kernel=args.liger,
        torch_compile=args.compile,
    )
    trainer = Trainer(model=model, args=training_args, train_dataset=data["train"],
                      eval_dataset=data.get("eval"), data_collator=counting, callbacks=[Clock()])
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    result = trainer.train()
    peak_cuda = torch.cuda.max_memory_allocated() / 2**20 if cuda else None  # training's peak, before eval
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    metrics = trainer.evaluate() if args.eval else {}
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    out = {
        "wall_s": time.perf_counter() - t_start,
        "train_s": result.metrics["train_runtime"],
        "steps": trainer.state.global_step,
        "tokens": tokens["n"],
        "marks": marks,
        "loss_first": losses[0] if losses else None,
        "loss_last": losses[-1] if losses else None,
        "eval_loss": metrics.get("eval_loss"),
        "peak_cuda_mb": peak_cuda,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    return out


if __name__ == "__main__":
    print("PLAIN_RESULT " + json.dumps(main()), flush=True)
