"""Reclaiming: taking over pending entries whose backoff has run out.

A failed or abandoned task stays pending. Each worker looks (every
``reclaim_interval_ms``) for entries idle longer than the backoff for their delivery
count and claims one (XCLAIM resets the idle time, so of several workers racing for an
entry exactly one wins). The claim and the scene lock move together in one script: the
lock passes to the new delivery when the old one held it, so a stalled worker that comes
back finds both gone and can write nothing more (:mod:`modomo.streams.fence`).

An entry whose last allowed delivery ended without a word (its worker died) is dead-
lettered; one that is no scene task at all goes to the dead stream as ``undecodable``.
Entries this worker is running itself are never claimed by it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from redis.asyncio import Redis

from modomo.domain.events import AttemptError
from modomo.domain.stages import SceneTask
from modomo.settings import Settings
from modomo.streams import metrics
from modomo.streams.delivery import lock_token
from modomo.streams.keys import Keys
from modomo.streams.outcomes import Outcomes
from modomo.streams.queue import Entry, Pending, TaskDecodeError, TaskQueue, decode_task

_CLAIM = """
local claimed = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4])
if #claimed == 0 then return claimed end
local holder = redis.call('GET', KEYS[2])
if holder == false or holder == ARGV[6] then
  redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[7])
end
return claimed
"""
"""KEYS: queue, scene lock. ARGV: group, consumer, min idle ms, entry id, new token, the
previous delivery's token, lock TTL ms. XCLAIM plus the hand-over of the lock."""


@dataclass(frozen=True, slots=True)
class Claimed:
    """An entry this worker took over, with how its previous delivery ended."""

    entry: Entry
    deliveries: int
    previous: Pending | None
    """The delivery before this one (None for a first delivery)."""


def stopped_responding(pending: Pending, task: SceneTask) -> AttemptError:
    """The error recorded for a delivery whose worker went silent."""
    return AttemptError(
        attempt=task.prior_attempts + pending.deliveries,
        error=f"worker {pending.consumer} stopped responding (idle {pending.idle_ms} ms)",
        consumer=pending.consumer,
    )


class Reclaimer:
    """Finds and claims pending entries whose backoff has passed, for one worker."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        settings: Settings,
        name: str,
        outcomes: Outcomes,
        running: Callable[[str], bool],
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self.name = name
        self.outcomes = outcomes
        self.running = running
        self.queue = TaskQueue(redis, keys)
        self._claim = redis.register_script(_CLAIM)
        self._next_at = 0.0
        self._log = structlog.get_logger("modomo.worker").bind(worker=name)

    async def next(self, stopping: Callable[[], bool]) -> Claimed | None:
        """One claimed entry ready for another attempt, or None (at most one scan per
        ``reclaim_interval_ms``). Exhausted and undecodable entries are ended on the way."""
        now = time.monotonic()
        if now < self._next_at:
            return None
        self._next_at = now + self.settings.reclaim_interval_ms / 1000
        shortest = min(self.settings.retry_backoff_ms)
        for pending in await self.queue.pending(shortest):
            if stopping():
                return None
            if self.running(pending.id) or pending.idle_ms < self.settings.backoff_ms(
                pending.deliveries
            ):
                continue
            claimed = await self._take(pending)
            if claimed is not None:
                return claimed
        return None

    async def _take(self, pending: Pending) -> Claimed | None:
        need = self.settings.backoff_ms(pending.deliveries)
        rows: Any = await self.redis.xrange(self.keys.queue, pending.id, pending.id)
        entry = Entry(pending.id, dict(rows[0][1] or {}) if rows else {})
        try:
            task = decode_task(entry)
        except TaskDecodeError as exc:
            if await self.queue.claim(self.name, pending.id, need, justid=True) is not None:
                await self.queue.dead_letter_undecodable(entry, str(exc))
                metrics.TASKS_DEAD.labels(reason="undecodable").inc()
                self._log.error("task_undecodable", entry_id=entry.id, error=str(exc))
            return None
        if pending.deliveries >= self.settings.max_attempts:
            # Claimed without raising the delivery count: only to end it.
            if await self.queue.claim(self.name, pending.id, need, justid=True) is None:
                return None
            metrics.TASKS_RECLAIMED.inc()
            errors = await self.queue.errors(pending.id)
            if len(errors) < pending.deliveries:
                errors.append(stopped_responding(pending, task))
            await self.outcomes.dead_unowned(entry, task, errors)
            return None
        reply = await self._claim(
            keys=[self.keys.queue, self.keys.lock(task.scene_id)],
            args=[
                self.queue.group,
                self.name,
                need,
                pending.id,
                lock_token(self.name, pending.id),
                lock_token(pending.consumer, pending.id),
                self.settings.lock_ttl_ms,
            ],
        )
        if not reply:
            return None  # another worker claimed it first
        entry_id, flat = reply[0]
        fields = dict(zip(flat[::2], flat[1::2], strict=True)) if flat else {}
        metrics.TASKS_RECLAIMED.inc()
        claimed = Entry(entry_id.decode() if isinstance(entry_id, bytes) else entry_id, fields)
        return Claimed(claimed, pending.deliveries + 1, pending)
