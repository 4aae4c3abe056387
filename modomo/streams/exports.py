"""The export queue: ``<prefix>:exports:queue`` and its ``exporters`` group.

An export request is an ``export_requested`` event on the log and the same event as a task
on this queue, appended in one MULTI, so a request is never recorded but not queued, nor
queued but not recorded. Exports run in their own worker process rather than in the API:
a request outlives an API restart, and a worker that dies mid-export leaves its entry
pending for another to claim. A running export keeps its claim fresh (a check-and-claim
script that never takes an entry back from another consumer); the final events are
appended in the same MULTI that acks the entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from modomo.domain.codec import CODEC, EventDecodeError
from modomo.domain.events import EventBase, ExportRequested
from modomo.streams.keys import EXPORT_GROUP, TASK_FIELD, Keys
from modomo.streams.log import Appended, EventLog

_KEEP_CLAIM = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if p[1] ~= nil and p[1][2] == ARGV[2] then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
  return 1
end
return 0
"""
"""Reset the entry's idle time only while this consumer owns it."""

PROGRESS_TTL_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class ExportDelivery:
    entry_id: str
    request: ExportRequested | None
    """None when the entry holds no readable request (it is dropped with a log line)."""
    deliveries: int
    error: str = ""


class ExportQueue:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self.log = EventLog(redis, keys)
        self._keep = redis.register_script(_KEEP_CLAIM)

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.keys.exports, EXPORT_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def request(self, event: ExportRequested) -> Appended:
        """Record the request on the log and queue it, atomically."""
        async with self.redis.pipeline(transaction=True) as pipe:
            staged = await self.log.stage(pipe, [event])
            pipe.xadd(self.keys.exports, {TASK_FIELD: CODEC.encode(event)})
            return staged.read(await pipe.execute())

    async def _deliveries(self, entry_id: str) -> int:
        rows: Any = await self.redis.xpending_range(
            self.keys.exports, EXPORT_GROUP, min=entry_id, max=entry_id, count=1
        )
        return int(rows[0]["times_delivered"]) if rows else 1

    async def _delivery(self, entry_id: Any, fields: Any) -> ExportDelivery:
        entry = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        deliveries = await self._deliveries(entry)
        raw = (fields or {}).get(TASK_FIELD)
        try:
            event = CODEC.decode(raw) if raw is not None else None
        except EventDecodeError as exc:
            return ExportDelivery(entry, None, deliveries, str(exc))
        if not isinstance(event, ExportRequested):
            return ExportDelivery(entry, None, deliveries, "not an export request")
        return ExportDelivery(entry, event, deliveries)

    async def next(self, consumer: str, block_ms: int, stale_ms: int) -> ExportDelivery | None:
        """An entry idle ``stale_ms`` (its worker died, or its attempt failed and the
        backoff passed), else a new one, waiting up to ``block_ms``."""
        claimed: Any = await self.redis.xautoclaim(
            self.keys.exports, EXPORT_GROUP, consumer, stale_ms, start_id="0-0", count=1
        )
        entries = claimed[1] if claimed else []
        if entries:
            return await self._delivery(*entries[0])
        reply: Any = await self.redis.xreadgroup(
            EXPORT_GROUP, consumer, {self.keys.exports: ">"}, count=1, block=block_ms
        )
        if not reply:
            return None
        return await self._delivery(*reply[0][1][0])

    async def keep(self, consumer: str, entry_id: str) -> bool:
        """Refresh this consumer's claim; False when another consumer holds the entry."""
        return bool(
            await self._keep(keys=[self.keys.exports], args=[EXPORT_GROUP, consumer, entry_id])
        )

    async def finish(self, entry_id: str, events: Sequence[EventBase], export_id: str) -> None:
        """Append the export's final events and ack its entry, in one MULTI."""
        async with self.redis.pipeline(transaction=True) as pipe:
            await self.log.stage(pipe, events)
            pipe.xack(self.keys.exports, EXPORT_GROUP, entry_id)
            pipe.delete(self.keys.export_progress(export_id))
            await pipe.execute()

    async def drop(self, entry_id: str) -> None:
        await self.redis.xack(self.keys.exports, EXPORT_GROUP, entry_id)

    async def progress(self, export_id: str, done: int, total: int) -> None:
        key = self.keys.export_progress(export_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"done": done, "total": total})
            pipe.expire(key, PROGRESS_TTL_S)
            await pipe.execute()
