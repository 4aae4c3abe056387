"""Prometheus series of the streams runtime (names documented in the README)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from modomo.streams.queue import QueueStats

TASKS_STARTED = Counter("modomo_tasks_started", "Scene task deliveries that began work")
TASKS_SUCCEEDED = Counter("modomo_tasks_succeeded", "Scene tasks finished and acked")
TASKS_FAILED = Counter("modomo_tasks_failed", "Scene task attempts that raised", ["will_retry"])
TASKS_DEAD = Counter(
    "modomo_tasks_dead_lettered",
    "Scene tasks moved to the dead stream by this process",
    ["reason"],
)
TASKS_RECLAIMED = Counter(
    "modomo_tasks_reclaimed", "Pending entries claimed after their backoff ran out"
)
TASKS_LOST = Counter(
    "modomo_tasks_lost",
    "Deliveries stopped because another worker took their scene over (nothing appended)",
)
TASKS_IN_FLIGHT = Gauge("modomo_tasks_in_flight", "Scene tasks being worked on now")
TASK_SECONDS = Histogram(
    "modomo_task_duration_seconds",
    "Wall time of a successful scene task",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)
QUEUE_LENGTH = Gauge("modomo_queue_length", "Entries in the scene task stream")
QUEUE_PENDING = Gauge("modomo_queue_pending", "Delivered scene tasks not yet acked")
DEAD_TASKS = Gauge("modomo_dead_tasks", "Entries in the dead stream")
DEAD_OLDEST_AGE = Gauge(
    "modomo_dead_oldest_age_seconds", "Age of the oldest entry in the dead stream (0 if none)"
)
DEAD_BY_REASON = Gauge(
    "modomo_dead_reason", "Tasks ever dead-lettered, by reason (all processes)", ["reason"]
)


def observe_queue(stats: QueueStats, now: datetime | None = None) -> None:
    """Copy a queue snapshot into the gauges."""
    QUEUE_LENGTH.set(stats.length)
    QUEUE_PENDING.set(stats.pending)
    DEAD_TASKS.set(stats.dead)
    oldest = stats.oldest_dead_at
    age = ((now or datetime.now(UTC)) - oldest).total_seconds() if oldest else 0.0
    DEAD_OLDEST_AGE.set(max(age, 0.0))
    for reason, count in stats.dead_by_reason.items():
        DEAD_BY_REASON.labels(reason=reason).set(count)
