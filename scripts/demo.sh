#!/usr/bin/env bash
# Set up, train the demo (writes runs/), then serve TensorBoard with the Insight tab on 127.0.0.1.
# Usage: bash scripts/demo.sh [demo/train.py args]   (PORT=6006 by default)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
# torch is pinned to the CPU build on these machines' disk; the package itself only needs torch>=2.0.
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.13.0" -e . 2>&1 \
  | grep -v "^WARNING: Location" || true

.venv/bin/python demo/train.py --logdir runs "$@"
PORT="${PORT:-6006}"
echo "Open http://127.0.0.1:${PORT}/#insight  (Ctrl-C to stop)"
exec .venv/bin/tensorboard --logdir runs --host 127.0.0.1 --port "${PORT}"
