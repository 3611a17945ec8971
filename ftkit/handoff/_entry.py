"""What a hand-off job runs on the remote machine: ``python -m ftkit.handoff._entry CONFIG RUN_DIR [--set P=V]``.

Every process (one per GPU, started by the platform with RANK, LOCAL_RANK,
WORLD_SIZE, MASTER_ADDR and MASTER_PORT set) writes the run's config, with
data paths replaced by the platform's mounted inputs, into ``RUN_DIR`` and
becomes an ordinary ftkit worker for it.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path


def main(argv=None) -> int:
    import argparse

    import yaml

    from ..config import RunConfig

    parser = argparse.ArgumentParser(prog="python -m ftkit.handoff._entry")
    parser.add_argument("config")
    parser.add_argument("run_dir")
    parser.add_argument("--set", action="append", default=[], metavar="PATH=VALUE")
    args = parser.parse_args(argv)
    config = RunConfig.from_json(args.config)
    changes = {}
    for item in args.set:
        path, _, value = item.partition("=")
        changes[path] = yaml.safe_load(value) if path.startswith(("training.", "distributed.")) else value
    config = config.update({**changes, "runs_dir": None, "resume_from": None})
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    for name, text in (("config.json", config.to_json()), ("config.yaml", config.to_yaml())):
        tmp = run_dir / f".{name}.{os.getpid()}"
        tmp.write_text(text)
        tmp.replace(run_dir / name)  # every rank writes the same text; the last rename wins
    from ..worker import main as worker

    return worker([str(run_dir)])


if __name__ == "__main__":
    sys.exit(main())
