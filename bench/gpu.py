"""GPU throughput and memory: ftkit vs the plain script, and what would make training faster.

    python bench/gpu.py                                   # a GPU: ~1B-parameter Llama, full/LoRA/QLoRA/DoRA
    python bench/gpu.py --methods lora --variants packing,padding_free,liger,compile
    python bench/gpu.py --device cpu --tiny --steps 4     # the CPU check that the script runs end to end
    python bench/gpu.py --dry-run                         # print the plan, run nothing

Part 1, per method (full, LoRA, QLoRA, DoRA): a Llama built from a config
(22 layers x 2048, 32 heads, 4 key/value heads, ~0.97B parameters with
ftkit's tokenizer; random weights, written once) trains on the domain task's
notes through ftkit (a worker process, as the CLI starts it) and through
``bench/plain_peft.py`` (Trainer + PEFT as the docs show them), each in a
fresh process, alternating. Printed: steady tokens/s (non-padding tokens
from step ``--skip`` on) and peak GPU memory (``torch.cuda.max_memory_allocated``
during training; on a CPU the process's peak RSS instead).

Part 2 tries what could make training faster than the plain script, each
on the plain script, alternating with a baseline run of it, so the gain is
measured against the same baseline in the same stretch of time:

* ``packing``: texts concatenated and cut into full blocks (no padding;
  the batch shrinks so tokens per step stay about the same),
* ``padding_free``: ``DataCollatorWithFlattening`` (one row, position ids
  restart per text; flash attention 2 when installed, else SDPA with
  transformers' packed-sequence mask),
* ``liger``: Liger kernels (``liger-kernel``; fused RMSNorm, RoPE, SwiGLU
  and linear + cross-entropy) through ``TrainingArguments.use_liger_kernel``,
* ``compile``: ``TrainingArguments.torch_compile``.

A variant whose requirement is missing (no CUDA for Liger, package not
installed) is reported as skipped with the reason, never silently.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, build_model, command_line, count_params, markdown, offline_env, run_worker, stamp  # noqa: E402

PLAIN = Path(__file__).resolve().parent / "plain_peft.py"
GPU_MODEL = dict(model_type="llama", hidden_size=2048, intermediate_size=5632, num_hidden_layers=22,
                 num_attention_heads=32, num_key_value_heads=4, max_position_embeddings=2048,
                 tie_word_embeddings=True, rms_norm_eps=1e-5)
TINY_MODEL = dict(model_type="llama", hidden_size=128, intermediate_size=344, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                  tie_word_embeddings=True, rms_norm_eps=1e-5)
METHODS = ("full", "lora", "qlora", "dora")
VARIANTS = ("packing", "padding_free", "liger", "compile")
LR = {"full": 2e-5, "lora": 2e-4, "qlora": 2e-4, "dora": 2e-4}


def variant_problem(variant: str, cuda: bool) -> str | None:
    """Why ``variant`` cannot run here, or None."""
    if variant == "liger":
        if not cuda:
            return "Liger kernels are Triton kernels: they need a CUDA GPU"
        if importlib.util.find_spec("liger_kernel") is None:
            return "liger-kernel is not installed (pip install liger-kernel)"
    if variant == "compile" and not cuda and shutil.which(os.environ.get("CXX", "g++")) is None:
        return "torch.compile on a CPU needs a C++ compiler (g++)"
    return None


def variant_flags(variant: str) -> list[str]:
    flags = {"packing": ["--packing"], "padding_free": ["--padding-free"], "liger": ["--liger"],
             "compile": ["--compile"]}[variant]
    if variant == "padding_free" and importlib.util.find_spec("flash_attn") is not None:
        flags += ["--attn", "flash_attention_2"]
    return flags


def steady(marks: list, skip: int) -> float | None:
    """Tokens per second from mark ``skip`` to the last: (time, tokens) pairs, one per step."""
    if len(marks) <= skip + 1:
        return None
    (t0, n0), (t1, n1) = marks[skip], marks[-1]
    return (n1 - n0) / (t1 - t0) if t1 > t0 else None


def ftkit_changes(model: str, train: str, evals: str, method: str, a) -> dict:
    return {
        "model.name_or_path": model,
        "task.name": "domain",
        "task.domain.sample_prompts": [],
        "data.source": train,
        "data.eval_source": evals,
        "method.name": method,
        **({f"method.{method}.r": a.r, f"method.{method}.lora_alpha": 2 * a.r} if method != "full" else {}),
        "training.max_steps": a.steps,
        "training.batch_size": a.batch_size,
        "training.max_seq_length": a.max_length,
        "training.learning_rate": LR[method],
        "training.logging_steps": 1,
        "training.eval_steps": 0,
        "training.optimizer": "adamw_torch_fused",  # Transformers' default, which the plain script gets
        "distributed.launcher": "python",
    }


def run_ftkit(model, train, evals, method, a, runs_dir) -> dict:
    r = run_worker(ftkit_changes(model, train, evals, method, a), runs_dir, a.timeout)
    shutil.rmtree(r["path"], ignore_errors=True)  # events and summary are read; the saved model is not needed
    s = r["summary"]
    if r["status"] != "finished":
        return {"ok": False, "reason": s.get("reason")}
    steps = [e for e in r["events"] if e["type"] == "step"]
    marks = [(e["time"], e.get("tokens", 0)) for e in steps]  # event times: 0.1 ms resolution
    return {"ok": True, "tokens_per_s": steady(marks, a.skip - 1), "peak_mb": s.get("peak_cuda_mb") or s.get("peak_rss_mb"),
            "wall_s": r["wall_s"], "loss_last": s.get("loss_last")}


def run_plain(model, train, evals, method, a, out_dir, flags=(), bf16=False) -> dict:
    argv = [sys.executable, str(PLAIN), "--model", model, "--train", train, "--eval", evals, "--out", out_dir,
            "--method", method, "--steps", str(a.steps), "--batch-size", str(a.batch_size),
            "--max-length", str(a.max_length), "--lr", str(LR[method]), "--logging-steps", "1",
            "--r", str(a.r), *(["--bf16"] if bf16 else []), *flags]
    if "--packing" in flags:  # about the same tokens per step as the padded batches
        argv[argv.index("--batch-size") + 1] = str(max(1, round(a.batch_size * a.mean_len / a.max_length)))
    done = subprocess.run(argv, capture_output=True, text=True, cwd=str(REPO), timeout=a.timeout)
    shutil.rmtree(out_dir, ignore_errors=True)
    line = next((l for l in done.stdout.splitlines() if l.startswith("PLAIN_RESULT ")), None)
    if done.returncode != 0 or line is None:
        return {"ok": False, "reason": (done.stderr.strip().splitlines() or ["no output"])[-1][:200]}
    o = json.loads(line[len("PLAIN_RESULT "):])
    return {"ok": True, "tokens_per_s": steady(o["marks"][1:], a.skip - 1),
            "peak_mb": o["peak_cuda_mb"] or o["peak_rss_mb"], "wall_s": o["wall_s"], "loss_last": o["loss_last"]}


def write_data(folder: Path, tokenizer_dir: str, max_length: int) -> tuple[str, str, float]:
    """The domain notes as train/eval JSONL, and their mean token length (bos and eos included)."""
    from transformers import AutoTokenizer

    from ftkit.tasks.domain import builtin

    rows = builtin()
    train, evals = rows[:-32], rows[-32:]
    paths = folder / "train.jsonl", folder / "eval.jsonl"
    for path, part in zip(paths, (train, evals)):
        path.write_text("".join(json.dumps({"text": r["text"]}) + "\n" for r in part))
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    lengths = [min(max_length, len(tok(r["text"])["input_ids"]) + 2) for r in train[:500]]
    return str(paths[0]), str(paths[1]), statistics.mean(lengths)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", choices=["auto", "cuda", "cpu"], default="auto")
    p.add_argument("--tiny", action="store_true", help="a 2-layer x 128 model (to check the script on a CPU)")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--variants", default=None, help=f"from {','.join(VARIANTS)}; default: all on a GPU, packing,padding_free on a CPU")
    p.add_argument("--variant-methods", default="lora,full", help="methods the variants are tried on")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--skip", type=int, default=5, help="steps left out of tokens/s (warm-up, compilation)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--r", type=int, default=16)
    p.add_argument("--repeats", type=int, default=1, help="ftkit/plain rounds per method (alternating)")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (OMP_NUM_THREADS); default 1 with --device cpu (steady on a shared machine)")
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--json")
    a = p.parse_args()
    methods = [m for m in a.methods.split(",") if m]
    for m in methods + [m for m in a.variant_methods.split(",") if m]:
        if m not in METHODS:
            p.error(f"unknown method {m!r}; choose from {','.join(METHODS)}")
    if a.skip >= a.steps:
        p.error(f"--skip ({a.skip}) must be below --steps ({a.steps})")
    if a.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # ftkit's launcher and torch both read it
    threads = a.threads if a.threads is not None else (1 if a.device == "cpu" else None)
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # before torch loads; every run inherits it
    offline_env()
    import torch

    cuda = torch.cuda.is_available()
    if a.device == "cuda" and not cuda:
        p.error("--device cuda: no CUDA GPU is visible here; use --device cpu --tiny to check the script")
    variants = [v for v in (a.variants.split(",") if a.variants is not None else
                            (VARIANTS if cuda else ("packing", "padding_free"))) if v]
    for v in variants:
        if v not in VARIANTS:
            p.error(f"unknown variant {v!r}; choose from {','.join(VARIANTS)}")
    spec = TINY_MODEL if a.tiny else GPU_MODEL
    if a.dry_run:
        print(f"device: {'cuda' if cuda else 'cpu'}; model {spec}; methods {methods}; variants {variants} "
              f"on {a.variant_methods}; {a.steps} steps x batch {a.batch_size} x {a.max_length} tokens")
        for v in variants:
            print(f"  {v}: {variant_problem(v, cuda) or 'runs'}")
        return 0

    from ftkit.models import cache_dir

    name = "llama-tiny-2x128" if a.tiny else "llama-22x2048"
    model = build_model(cache_dir() / "bench" / name, spec)
    vocab = json.loads((Path(model) / "config.json").read_text())["vocab_size"]
    work = Path(tempfile.mkdtemp(prefix="ftkit-bench-gpu-"))
    train, evals, a.mean_len = write_data(work, model, a.max_length)
    print(stamp(command_line()))
    print(f"work: Llama {count_params(spec, vocab) / 1e9:.3f}B parameters ({name}), {a.steps} steps x batch "
          f"{a.batch_size}, texts of {a.mean_len:.0f} tokens on average (max {a.max_length}), "
          f"{'bf16' if cuda else 'fp32'}; tokens/s from step {a.skip} on\n")
    log = lambda line: print("  " + line, file=sys.stderr, flush=True)  # noqa: E731
    runs_dir = str(work / "runs")
    counter = iter(range(10**6))
    bf16 = cuda and torch.cuda.is_bf16_supported()

    results: dict[str, dict[str, list]] = {}
    for method in methods:
        results[method] = {"ftkit": [], "plain": []}
        for i in range(a.repeats):
            for side in ("ftkit", "plain"):
                r = (run_ftkit(model, train, evals, method, a, runs_dir) if side == "ftkit" else
                     run_plain(model, train, evals, method, a, str(work / f"plain-{next(counter)}"), bf16=bf16))
                results[method][side].append(r)
                log(f"{method} {side}: " + (f"{r['tokens_per_s'] or 0:,.0f} tokens/s, peak {r['peak_mb'] or 0:,.0f} MB"
                                             if r["ok"] else f"failed: {r['reason']}"))

    def med(rs, key):
        vals = [r[key] for r in rs if r["ok"] and r.get(key)]
        return statistics.median(vals) if vals else None

    memory = "peak GPU MB" if cuda else "peak RSS MB"
    rows = []
    for method, sides in results.items():
        f, pl = med(sides["ftkit"], "tokens_per_s"), med(sides["plain"], "tokens_per_s")
        rows.append([method, f"{f:,.0f}" if f else "failed", f"{pl:,.0f}" if pl else "failed",
                     f"{f / pl:.3f}" if f and pl else "-",
                     f"{med(sides['ftkit'], 'peak_mb') or 0:,.0f}", f"{med(sides['plain'], 'peak_mb') or 0:,.0f}"])
    print(markdown(["method", "ftkit tokens/s", "plain tokens/s", "ftkit / plain", f"ftkit {memory}",
                    f"plain {memory}"], rows))

    vrows = []
    vresults: dict[str, list] = {}
    for method in [m for m in a.variant_methods.split(",") if m]:
        runnable = [v for v in variants if not variant_problem(v, cuda)]
        vrows += [[method, v, "skipped", "-", "-", variant_problem(v, cuda)] for v in variants if v not in runnable]
        if not runnable:
            continue
        # the baseline alternates with the variants (base, v1, v2, base, v1, v2, ...): gains within one stretch
        for i in range(a.repeats):
            for v in ["baseline"] + runnable:
                r = run_plain(model, train, evals, method, a, str(work / f"plain-{next(counter)}"),
                              flags=() if v == "baseline" else variant_flags(v), bf16=bf16)
                vresults.setdefault(f"{method}:{v}", []).append(r)
                log(f"{method} + {v}: " + (f"{r['tokens_per_s'] or 0:,.0f} tokens/s" if r["ok"]
                                           else f"failed: {r['reason']}"))
        base = med(vresults[f"{method}:baseline"], "tokens_per_s")
        for v in runnable:
            rs = vresults[f"{method}:{v}"]
            tps = med(rs, "tokens_per_s")
            if tps is None:
                vrows.append([method, v, "failed", "-", "-", next((r["reason"] for r in rs if not r["ok"]), "")])
                continue
            last = next((r["loss_last"] for r in rs if r["ok"]), None)
            vrows.append([method, v, f"{tps:,.0f}", f"x{tps / base:.2f}" if base else "-",
                          f"{med(rs, 'peak_mb') or 0:,.0f}", "loss last " + (f"{last:.3f}" if last else "-")])
    if vrows:
        print()
        print(markdown(["method", "variant (plain script)", "tokens/s", "vs plain baseline", memory, "note"], vrows))
    if a.json:
        Path(a.json).write_text(json.dumps({"methods": results, "variants": vresults}, indent=2, default=str))
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
