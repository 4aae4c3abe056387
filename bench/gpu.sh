#!/usr/bin/env bash
# The full-size benchmark on a lent GPU: real-size architectures with random weights,
# sequential vs optimized, in under 5 minutes. Run from the repository root of a machine
# whose .venv has the gpu extra (pip install -e '.[gpu]'; see the field notes for the
# sam2 build line). Prints nvidia-smi, then bench/pipeline.py's table.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 YOLO_OFFLINE=1 YOLO_AUTOINSTALL=false
export YOLO_CONFIG_DIR=${TMPDIR:-/tmp}/modomo-yolo MPLCONFIGDIR=${TMPDIR:-/tmp}/modomo-mpl
PY=${PYTHON:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
# Writing the full-size random checkpoints takes about a minute the first time.
timeout 280 "$PY" bench/pipeline.py --profile full-random --device cuda \
  --scenes "${SCENES:-24}" --batch "${BATCH:-8}" --model-dir "${MODEL_DIR:-/tmp/modomo-models}"
