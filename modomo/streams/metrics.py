"""Prometheus series of the streams runtime (names documented in the README)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge, Histogram
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from modomo.streams.keys import GPU_GROUP, Keys

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
QUEUE_UNDELIVERED = Gauge(
    "modomo_queue_undelivered",
    "Scene tasks queued but never delivered to a worker (the consumer group's lag)",
)
WORKERS_LIVE = Gauge(
    "modomo_queue_consumers_live",
    "Workers of the task group that Redis saw within the last LIVE_IDLE_MS",
)
LIVE_IDLE_MS = 60_000
"""A worker reads, claims or refreshes its claims at least every few seconds while it
runs (``MODOMO_BLOCK_MS``, ``MODOMO_HEARTBEAT_MS``); a minute of silence means it is gone."""
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


async def observe_workers(redis: Redis, keys: Keys) -> tuple[int, int]:
    """Set the undelivered and live-worker gauges from the task group; returns both.

    A queue whose group does not exist yet has had no worker at all: everything in it is
    undelivered.
    """
    try:
        groups: Any = await redis.xinfo_groups(keys.queue)
    except ResponseError:  # no queue yet
        groups = []
    group = next((g for g in groups if _name(g["name"]) == GPU_GROUP), None)
    if group is None:
        undelivered = int(await redis.xlen(keys.queue))
        live = 0
    else:
        lag = group.get("lag")
        if lag is None:
            # Redis cannot count the lag once entries were deleted inside the range: count
            # the entries after the last delivered one instead (bounded; > 0 is what matters).
            after: Any = await redis.xrange(
                keys.queue, min=f"({_name(group['last-delivered-id'])}", count=1000
            )
            lag = len(after)
        undelivered = int(lag)
        consumers: Any = await redis.xinfo_consumers(keys.queue, GPU_GROUP)
        live = sum(1 for c in consumers if int(c["idle"]) < LIVE_IDLE_MS)
    QUEUE_UNDELIVERED.set(undelivered)
    WORKERS_LIVE.set(live)
    return undelivered, live


def _name(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
