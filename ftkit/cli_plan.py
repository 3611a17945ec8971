"""What a config would do, before it runs: ``config``, ``plan``, ``estimate``, ``advise``."""
from __future__ import annotations

import json

from .cli_common import _add_config_args, load_config

def cmd_config(args) -> int:
    config = load_config(args)
    if args.json:
        text = config.to_json()
    else:
        text = config.to_yaml() if args.plain else config.annotated_yaml()
    print(text, end="")
    return 0


def cmd_plan(args) -> int:
    from .plan import plan, plan_text

    result = plan(load_config(args))
    print(json.dumps(result, indent=2) if args.json else plan_text(result))
    return 0


def cmd_estimate(args) -> int:
    from .estimator import estimate

    result = estimate(load_config(args), gpus=args.gpus, gpu_memory_gb=args.gpu_memory, device=args.device)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.table())
    return 0


def cmd_advise(args) -> int:
    from .advisor import advise

    result = advise(args.task, args.model, gpus=args.gpus, gpu_memory_gb=args.gpu_memory, device=args.device,
                    seq=args.seq, batch=args.batch)
    print(json.dumps(result.to_dict(), indent=2) if args.json else result.text())
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("config", help="print the validated config (YAML) that train would run, each value "
                                      "marked with where it came from")
    _add_config_args(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of YAML")
    p.add_argument("--plain", action="store_true",
                   help="YAML without the comment after each value saying where it came from "
                        "(default, method, preset, user, reset)")
    p.set_defaults(func=cmd_config, runs_dir=None)

    p = sub.add_parser("plan", help="what a config would train, from the model's config.json alone (no weights)")
    _add_config_args(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_plan, runs_dir=None)

    p = sub.add_parser("estimate", help="predict peak memory per GPU, trainable parameters and step time "
                       "from the model's config.json alone")
    _add_config_args(p)
    p.add_argument("--gpus", type=int, default=None, help="GPUs the run spans (default: the config's processes)")
    p.add_argument("--gpu-memory", type=float, default=None, metavar="GIB", help="memory of each GPU in GiB "
                   "(2**30 bytes; an \"80GB\" card: 80; default: the device's)")
    p.add_argument("--device", default="A100-80GB", help="device for throughput and defaults (e.g. H100-80GB, "
                   "RTX-4090, CPU)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_estimate, runs_dir=None)

    p = sub.add_parser("advise", help="rank the fine-tuning configurations that fit a model, task and GPU budget")
    p.add_argument("--task", required=True, help="task name (`ftkit tasks`)")
    p.add_argument("--model", required=True, help="Hub id, folder or builtin:* model")
    p.add_argument("--gpus", type=int, default=1)
    p.add_argument("--gpu-memory", type=float, default=24, metavar="GIB",
                   help="memory of each GPU in GiB (2**30 bytes; an \"80GB\" card: 80)")
    p.add_argument("--device", default=None, help="device for the time estimate (default: one with that memory)")
    p.add_argument("--seq", type=int, default=None, help="tokens per example (default 1024 generative, 256 else)")
    p.add_argument("--batch", type=int, default=4, help="examples per GPU per step")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_advise)
