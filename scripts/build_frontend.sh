#!/usr/bin/env bash
# Build the Insight tab's browser bundle into tb_plugin_insight/plugin/static/index.js.
# Idempotent: regenerates frontend/src/generated/fields.ts from tb_plugin_insight/metadata.py (the
# record field lists have one source), installs the exact locked dependencies (npm ci) only when they
# are missing or stale, then runs esbuild. The output is deterministic, so re-running on a clean tree
# changes nothing.
#   scripts/build_frontend.sh            build
#   scripts/build_frontend.sh --check    also type-check (tsc --noEmit)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT/frontend"

# The repository's virtual environment when there is one (it has tensorboard, which metadata.py needs).
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
"$PYTHON" "$ROOT/scripts/gen_frontend_fields.py"

command -v node >/dev/null || { echo "node is required (Node >= 20.19)" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm is required" >&2; exit 1; }

# npm ci when node_modules is absent or older than the lockfile.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
if [ "${1:-}" = "--check" ]; then
  npm run --silent typecheck
fi
npm run --silent build
