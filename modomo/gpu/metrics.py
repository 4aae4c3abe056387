"""Prometheus series of the GPU worker (beside the streams runtime's task series)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

STAGE_SECONDS = Histogram(
    "modomo_stage_duration_seconds",
    "Wall time of one pipeline stage for one scene",
    ["stage"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
STAGE_FAILURES = Counter(
    "modomo_stage_failures", "Pipeline stages that raised (the scene went on, partial)", ["stage"]
)
SCENES_PROCESSED = Counter(
    "modomo_scenes_processed", "Scenes the pipeline finished, by outcome", ["status"]
)
SCENES_FAILED = Counter("modomo_scenes_failed", "Scenes whose pipeline raised (retried or dead)")
GPU_MEMORY = Gauge("modomo_gpu_memory_bytes", "GPU memory torch holds now")
MODELS_LOADED = Gauge("modomo_models_loaded", "1 once the worker's models are in memory")
