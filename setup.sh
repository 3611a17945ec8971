#!/usr/bin/env bash
# Sets ftkit up in ./.venv (CPU torch 2.13.0 first, then ftkit with every extra,
# pinned by constraints.txt) and trains the embedded demo. --no-demo skips the run.
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${pip[@]}" install torch==2.13.0
"${pip[@]}" install -c constraints.txt -e ".[all,dev]"
if [ "${1:-}" != "--no-demo" ]; then
  .venv/bin/ftkit train --preset demo
fi
