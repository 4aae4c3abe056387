"""A worker's periodic chores: the queue gauges, and trimming the queue.

The queue is trimmed below the lowest entry any group still needs (pending, or not yet
read), every ``queue_trim_interval_s``, so it never grows with the work done; entries
that are pending or unread are never removed (:meth:`TaskQueue.safe_trim_id`).
"""

from __future__ import annotations

import time

import structlog

from modomo.streams import metrics
from modomo.streams.queue import TaskQueue

STATS_INTERVAL_S = 5.0
"""How often a worker refreshes the queue gauges."""


class Housekeeping:
    """Runs the chores that are due; the worker calls it every ``tick_s``."""

    def __init__(self, queue: TaskQueue, trim_interval_s: float) -> None:
        self.queue = queue
        self.trim_interval_s = trim_interval_s
        now = time.monotonic()
        self._stats_at = now
        self._trim_at = now + trim_interval_s
        self.trimmed = 0
        """Queue entries this worker has trimmed since it started."""
        self.trim_runs = 0
        """How many times it has looked for entries to trim."""
        self.tick_s = min(1.0, trim_interval_s, STATS_INTERVAL_S)
        """How often :meth:`run_due` is worth calling."""
        self._log = structlog.get_logger("modomo.worker")

    async def run_due(self) -> None:
        """Refresh the gauges and trim the queue when their time has come."""
        now = time.monotonic()
        if now >= self._stats_at:
            self._stats_at = now + STATS_INTERVAL_S
            metrics.observe_queue(await self.queue.stats())
        if now >= self._trim_at:
            self._trim_at = now + self.trim_interval_s
            removed = await self.queue.trim()
            self.trim_runs += 1
            self.trimmed += removed
            if removed:
                self._log.info("queue_trimmed", removed=removed)
