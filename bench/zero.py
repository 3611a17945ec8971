"""DeepSpeed ZeRO on 2 CPU ranks: per-rank peak memory and speed per stage, beside the ZeRO paper's formulas.

    python bench/zero.py [--steps 4] [--only 0,1,2,3,2+opt,3+opt,3+all] [--json out.json]

Full fine-tuning of a random-init Llama (8 layers x 512, about 27M
parameters, ftkit's tokenizer) on the domain task, batch 2 x 64 tokens per
rank, under each ZeRO stage and with CPU offload, 2 ranks (torchrun, gloo,
DeepSpeed's CPU accelerator), each run a real ftkit run. Per row: each
rank's RSS above the run's baseline (the worker with torch, transformers
and DeepSpeed loaded), at its peak and at the last step, seconds per step, the
estimator's prediction (``ftkit.estimate``), and the model states the ZeRO
paper (Rajbhandari et al., 2020, §5) gives per device for mixed-precision
Adam with N ranks: 16 bytes per parameter without ZeRO, stage 1: 4 + 12/N,
stage 2: 2 + 14/N, stage 3: 16/N. These CPU runs train in fp32, where the
same accounting (4-byte weights and gradients, Adam's two fp32 states plus
the fp32 partition DeepSpeed's ZeRO optimizer always keeps) gives 16,
8 + 12/N, 4 + 16/N and 20/N: printed too, and the column to compare with.
Offloaded states stay in the same RSS on a CPU machine (there is no device
memory to free); the offload rows show what they cost in speed here and
what they would free on a GPU.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (command_line, count_params, long_texts, markdown, offline_env, run_worker,  # noqa: E402
                     stamp, build_model)

ZERO_MODEL = dict(model_type="llama", hidden_size=512, intermediate_size=1408, num_hidden_layers=8,
                  num_attention_heads=8, num_key_value_heads=8, max_position_embeddings=512,
                  tie_word_embeddings=True, rms_norm_eps=1e-6)
RANKS = 2
MB = 2 ** 20

#: row key -> (label, stage, offload optimizer, offload params)
ROWS = {
    "0": ("ZeRO-0 (data parallel)", 0, "none", "none"),
    "1": ("ZeRO-1", 1, "none", "none"),
    "2": ("ZeRO-2", 2, "none", "none"),
    "3": ("ZeRO-3", 3, "none", "none"),
    "2+opt": ("ZeRO-2 + offload optimizer", 2, "cpu", "none"),
    "3+opt": ("ZeRO-3 + offload optimizer", 3, "cpu", "none"),
    "3+all": ("ZeRO-3 + offload optimizer and params", 3, "cpu", "cpu"),
}


def paper_bytes(stage: int, n: int, offload_opt: bool = False, offload_params: bool = False) -> float:
    """Model-state bytes per parameter on each device, mixed-precision Adam (ZeRO paper: 2 + 2 + 12)."""
    params, grads, optim = 2.0, 2.0, 12.0
    if stage >= 1:
        optim /= n
    if stage >= 2:
        grads /= n
    if stage >= 3:
        params /= n
    if offload_opt:  # ZeRO-Offload: optimizer states and the gradients they step on live in CPU memory
        optim, grads = 0.0, 0.0
    if offload_params:
        params = 0.0
    return params + grads + optim


def fp32_bytes(stage: int, n: int) -> float:
    """The same for fp32 training as these CPU runs do it: 4-byte weights and gradients, Adam's two fp32
    states, and (ZeRO 1-3) the fp32 partition of the weights DeepSpeed's ZeRO optimizer steps on."""
    if stage == 0:
        return 4 + 4 + 8
    optim = (8 + 4) / n
    grads = 4.0 / n if stage >= 2 else 4.0
    params = 4.0 / n if stage >= 3 else 4.0
    return params + grads + optim


def changes(model: str, data: str, steps: int, stage: int, opt: str, params: str) -> dict:
    return {
        "model.name_or_path": model,
        "task.name": "domain",
        "task.domain.sample_prompts": [],
        "data.source": data,
        "data.max_train_samples": 64,
        "data.max_eval_samples": 2,
        "method.name": "full",
        "training.max_steps": steps,
        "training.batch_size": 2,
        "training.max_seq_length": 64,
        "training.eval_steps": 0,
        "training.logging_steps": 1,
        "training.learning_rate": 1e-4,
        "distributed.launcher": "torchrun",
        "distributed.num_processes": RANKS,
        "distributed.zero_stage": stage,
        "distributed.offload_optimizer": opt,
        "distributed.offload_params": params,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--only", default=",".join(ROWS), help=f"rows to run, from: {','.join(ROWS)}")
    parser.add_argument("--timeout", type=float, default=1200, help="seconds per run")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    keys = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = [k for k in keys if k not in ROWS]
    if unknown:
        parser.error(f"--only: unknown row {unknown[0]!r}; choose from {','.join(ROWS)}")

    offline_env()
    from ftkit.models import cache_dir

    work = Path(tempfile.mkdtemp(prefix="ftkit-bench-zero-"))
    model = build_model(cache_dir() / "bench" / "llama-8x512", ZERO_MODEL)
    data = long_texts(work)
    vocab = json.loads((Path(model) / "config.json").read_text())["vocab_size"]
    psi = count_params(ZERO_MODEL, vocab)
    print(stamp(command_line()))
    print(f"work: full fine-tuning, {psi / 1e6:.1f}M parameters, {RANKS} ranks x batch 2 x 64 tokens, "
          f"{args.steps} steps, fp32, torch AdamW\n")

    results = []
    for key in keys:
        label, stage, opt, params = ROWS[key]
        r = run_worker(changes(model, data, args.steps, stage, opt, params), str(work / "runs"), args.timeout)
        s = r["summary"]
        baseline = s.get("baseline_rss_mb")
        ranks = [p - baseline if p and baseline else None for p in (s.get("rank_peak_rss_mb") or [])]
        steps = [e for e in r["events"] if e["type"] == "step" and e.get("rank_rss_mb")]
        now = [m - baseline if m and baseline else None for m in (steps[-1]["rank_rss_mb"] if steps else [])]
        row = {"row": label, "key": key, "status": r["status"], "reason": s.get("reason"),
               "rank_peak_mb": ranks, "rank_last_step_mb": now, "s_per_step": s.get("s_per_step"), "predicted_mb": s.get("predicted_peak_mb"),
               "paper_mb": paper_bytes(stage, RANKS, opt != "none", params != "none") * psi / MB,
               "fp32_mb": fp32_bytes(stage, RANKS) * psi / MB, "wall_s": round(r["wall_s"], 1),
               "loss_last": s.get("loss_last")}
        results.append(row)
        shown = " / ".join(f"{m:.0f}" for m in ranks if m is not None) or "-"
        print(f"  {label}: {r['status']}, per-rank peak {shown} MB, {row['s_per_step'] or 0:.2f} s/step, "
              f"{row['wall_s']} s wall" + (f" ({row['reason']})" if r["status"] != "finished" else ""),
              file=sys.stderr, flush=True)

    def mb(v) -> str:
        return "-" if v is None else f"{v:,.0f}"

    def largest(values) -> float | None:
        return max((m for m in values if m is not None), default=None)

    stage0 = next((r for r in results if r["key"] == "0" and largest(r["rank_last_step_mb"]) is not None), None)
    table = []
    for r in results:
        now = largest(r["rank_last_step_mb"])
        saved = "-"
        if stage0 is not None and now is not None and r is not stage0 and "offload" not in r["row"]:
            saved = (f"{largest(stage0['rank_last_step_mb']) - now:,.0f} / "
                     f"{(fp32_bytes(0, RANKS) - fp32_bytes(ROWS[r['key']][1], RANKS)) * psi / MB:,.0f}")
        table.append([r["row"] if r["status"] == "finished" else f"{r['row']} ({r['status']})",
                      " / ".join(mb(m) for m in r["rank_peak_mb"]) or "-",
                      " / ".join(mb(m) for m in r["rank_last_step_mb"]) or "-", mb(r["predicted_mb"]),
                      mb(r["paper_mb"]), mb(r["fp32_mb"]), saved,
                      "-" if r["s_per_step"] is None else f"{r['s_per_step']:.2f}"])
    print(markdown(["run (2 CPU ranks)", "peak MB, rank 0 / 1", "at last step MB, rank 0 / 1",
                    "ftkit estimate (peak) MB", "paper model states MB (mixed precision)",
                    "model states MB (fp32, as run)", "saved vs ZeRO-0 at last step MB: measured / fp32 formula",
                    "s/step"], table))
    print(f"\nformulas per device, N = {RANKS}, Ψ = {psi:,} parameters: mixed precision 16Ψ, 4Ψ + 12Ψ/N, "
          f"2Ψ + 14Ψ/N, 16Ψ/N; fp32 16Ψ, 8Ψ + 12Ψ/N, 4Ψ + 16Ψ/N, 20Ψ/N. Memory is RSS above the worker's "
          f"baseline; it also holds activations, DeepSpeed's buckets and the runtime, so the saved column "
          f"(ZeRO-0 minus this row, both at the last step) is the one to set beside the formula.")
    failed = [r for r in results if r["status"] != "finished"]
    for r in failed:
        print(f"failed: {r['row']}: {r['reason']}")
    if args.json:
        Path(args.json).write_text(json.dumps({"params": psi, "rows": results}, indent=2))
    shutil.rmtree(work, ignore_errors=True)  # each full run saved a whole model
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
