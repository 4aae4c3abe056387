"""Prometheus series of the projectors."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_APPLIED = Counter(
    "modomo_projector_events", "Log entries a projector has applied", ["projector"]
)
EVENTS_PARKED = Counter(
    "modomo_projector_parked", "Log entries a projector could not apply", ["projector"]
)
BATCH_SECONDS = Histogram(
    "modomo_projector_batch_seconds",
    "Time to apply one batch and its checkpoint",
    ["projector"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
LAG = Gauge(
    "modomo_projector_lag_events", "Log entries not yet applied by a projector", ["projector"]
)
ACTIVE = Gauge(
    "modomo_projector_active", "1 while this process holds the projector's lease", ["projector"]
)
PARKED_OPEN = Gauge(
    "modomo_projector_parked_open",
    "Parked log entries no operator has retried or skipped yet",
    ["projector"],
)
LOG_TRIMMED = Counter(
    "modomo_log_trimmed", "Entries trimmed from the Redis log below every projector's checkpoint"
)
