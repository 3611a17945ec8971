"""Using a trained run: ``predict`` and ``export``."""
from __future__ import annotations

import json
import sys

def cmd_predict(args) -> int:
    from .predict import PredictError, Predictor

    text = sys.stdin.read() if args.text == "-" else args.text
    options = {"max_new_tokens": args.max_new_tokens, "temperature": args.temperature, "seed": args.seed,
               "context": args.context}
    try:
        predictor = Predictor(args.run, runs_dir=args.runs_dir, checkpoint=args.checkpoint)
        result = predictor.predict(text, **{k: v for k, v in options.items() if v is not None})
    except PredictError as exc:
        print(f"ftkit: {exc}", file=sys.stderr)
        return 2
    print(json.dumps({"run": predictor.name, "task": predictor.task, **result.to_dict()}, indent=2)
          if args.json else str(result))
    return 0


def cmd_export(args) -> int:
    from .export import ExportError, export

    try:
        result = export(args.run, args.format, args.out, runs_dir=args.runs_dir, tolerance=args.tolerance,
                        quantized_base=args.quantized_base)
    except ExportError as exc:
        print(f"ftkit: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.text())
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("predict", help="run a finished run's model on one input: text, label, entities or answer",
                       description="Generated text (domain, chat, creative, translation), label and probabilities "
                       "(classification), entities with character offsets (ner) or the answer span (qa). "
                       "QA: the question as TEXT and the passage as --context, or TEXT as 'QUESTION ||| CONTEXT'.")
    p.add_argument("run", help="run id (or any unique part of one) or run folder")
    p.add_argument("text", help="the input text ('-' reads it from stdin); for qa the question")
    p.add_argument("--context", help="qa: the passage the answer is found in")
    p.add_argument("--max-new-tokens", type=int, metavar="N", help="generation: tokens to generate "
                   "(default: the task's)")
    p.add_argument("--temperature", type=float, metavar="T", help="generation: sampling temperature, 0 greedy "
                   "(default: the task's)")
    p.add_argument("--seed", type=int, help="generation: seed for sampling (default: the run's)")
    p.add_argument("--checkpoint", metavar="DIR", help="predict from this saved checkpoint folder instead of the "
                   "run's final model (e.g. a stopped or failed run's last checkpoint, `ftkit show RUN`)")
    p.add_argument("--runs-dir")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="write a run's adapter, merged model or ONNX graph, checked against the "
                       "trained model on rows of its own data")
    p.add_argument("run", help="run id (or any unique part of one) or run folder")
    p.add_argument("--format", required=True, choices=["adapter", "merged", "onnx"],
                   help="adapter: peft files + tokenizer + run config; merged: full safetensors weights; "
                   "onnx: the merged model as an ONNX graph checked in onnxruntime")
    p.add_argument("--out", metavar="DIR", help="where to write (default RUN/export/FORMAT)")
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest max |difference| of outputs allowed "
                   "between the export and the trained model (float32; default 1e-4)")
    p.add_argument("--quantized-base", choices=["dequantized", "original"], default="dequantized",
                   help="4/8-bit runs: merge onto the quantized base dequantized to float32 (the weights the "
                   "adapter trained against) or onto the original full-precision base")
    p.add_argument("--runs-dir")
    p.add_argument("--json", action="store_true", help="print the result (files, notes, checks) as JSON")
    p.set_defaults(func=cmd_export)
