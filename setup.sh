#!/usr/bin/env bash
# Sets ftkit up in ./.venv (CPU torch 2.13.0 first, then ftkit with every extra,
# pinned by constraints.txt), builds the browser tests' widget page and trains the embedded demo. --no-demo skips the run.
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)
"${pip[@]}" install torch==2.13.0
"${pip[@]}" install -c constraints.txt -e ".[all,dev]"
# the browser tests' html-manager page: a bundle built from npm packages (lockfile), rebuilt when its sources change
page=tests/browser/widget_page
if [ -z "$(find "$page/dist/page.js" -newer "$page/package-lock.json" 2>/dev/null)" ] \
    || [ -n "$(find "$page/src" -newer "$page/dist/page.js" 2>/dev/null)" ]; then
  (cd "$page" && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
fi
if [ "${1:-}" != "--no-demo" ]; then
  .venv/bin/ftkit train --preset demo
fi
