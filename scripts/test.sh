#!/usr/bin/env bash
# Set up everything and run every check: lint, format, docs, frontend types, bundle freshness, all tests.
# Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt -e . 2>&1 \
  | grep -v "^WARNING: Location" || true
# pytorch-grad-cam, the reference of tests/test_fullgrad.py, without its dependencies (it declares
# torchvision, which cannot import beside the pinned torch; see requirements-dev.txt).
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps grad-cam==1.5.7 2>&1 \
  | grep -v "^WARNING: Location" || true

# Headless Chromium for the browser tests (Debian's package; never `playwright install`).
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "installing chromium with apt-get ..."
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
    || echo "warning: could not install chromium; browser tests will be skipped"
fi

if [ -f frontend/package-lock.json ]; then
  (cd frontend && npm ci --no-audit --no-fund --loglevel=error)
fi

echo "== ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "== mypy"
.venv/bin/mypy
echo "== mkdocs build --strict"
# A broken link, anchor or API reference fails the build (not with --quiet: it hides the warnings that
# --strict counts); the site goes to the gitignored site/.
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir site
if [ -f frontend/tsconfig.json ]; then
  echo "== tsc --noEmit"
  (cd frontend && npx --no-install tsc --noEmit)
fi
echo "== pytest"
.venv/bin/python -m pytest "$@"
