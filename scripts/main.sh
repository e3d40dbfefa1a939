#!/usr/bin/env bash
# The main job: a real LoDM condensation of MNIST (IPC 1, rank 2 -> 7 images/class) on CPU,
# evaluated with the standard protocol (shortened), written to runs/mnist-lodm-ipc1-cpu/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export HF_LODC_LOCAL_HUB="${HF_LODC_LOCAL_HUB:-$(cd .. && pwd)/shared/hub}"
python recipes/condense.py --config recipes/configs/mnist-lodm-ipc1-cpu.yaml "$@"
