#!/usr/bin/env bash
# Runpod start: real weights once into the volume, then the worker (it loads the models at
# start, answers /health and /warmup on :8090, and exits after MODOMO_WORKER_IDLE_EXIT_S
# idle so the pod scales to zero).
set -euo pipefail
if [ ! -f "${MODOMO_MODEL_DIR}/modomo-models.json" ]; then
  modomo models pull
fi
exec modomo worker
