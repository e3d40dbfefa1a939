#!/usr/bin/env bash
# Create .venv (if needed) and install hf_lodc with its test extras. Idempotent; no network beyond
# the package registry. torch/torchvision are pinned to the builds this project is tested with.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
if ! python -c "import hf_lodc, pytest, hypothesis, olah, transformers" >/dev/null 2>&1; then
  python -m pip install -q --upgrade pip
  python -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
  python -m pip install -q -e ".[dev]"
fi
