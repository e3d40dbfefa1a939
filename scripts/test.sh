#!/usr/bin/env bash
# The test suite (CPU, offline: datasets come from ../shared/hub).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_LODC_LOCAL_HUB="${HF_LODC_LOCAL_HUB:-$(cd .. && pwd)/shared/hub}"
python -m pytest tests -q "$@"
