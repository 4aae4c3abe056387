#!/usr/bin/env bash
# Runpod start: real weights once into the volume, then the worker (it loads the models at
# start, answers /health and /warmup on :8090, and exits after MODOMO_WORKER_IDLE_EXIT_S
# idle so the pod scales to zero). /warmup needs 'Authorization: Bearer $MODOMO_WORKER_TOKEN'
# and /metrics 'Bearer $MODOMO_METRICS_TOKEN'; /health is open for the platform's probe.
set -euo pipefail
# The image listens beyond loopback: say so before minutes of weight pulling, not after.
: "${MODOMO_WORKER_TOKEN:?set MODOMO_WORKER_TOKEN: POST /warmup needs it beyond loopback}"
if [ ! -f "${MODOMO_MODEL_DIR}/modomo-models.json" ]; then
  modomo models pull
fi
exec modomo worker
