"""Fan-out of job streams: one Redis reader per job stream per process, many SSE clients.

A browser on an SSE connection must not cost a Redis connection: the first subscriber of a
job starts one ``XREAD BLOCK`` loop on ``<prefix>:jobs:events:<job_id>``, every new entry
goes to each subscriber's queue, and the loop ends with its last subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import structlog
from redis.asyncio import Redis

from modomo.domain.codec import CODEC, EventDecodeError
from modomo.domain.events import Event
from modomo.settings import SSE_BLOCK_MS
from modomo.streams.keys import EVENT_FIELD, Keys


@dataclass(frozen=True, slots=True)
class Entry:
    """A job-stream entry, decoded once for all the clients that receive it."""

    id: str
    key: tuple[int, int]
    event: Event | None
    data: str


def decode_entry(entry_id: str, raw: bytes) -> Entry:
    ms, _, seq = entry_id.partition("-")
    try:
        event: Event | None = CODEC.decode(raw)
        data = raw.decode()
    except (EventDecodeError, UnicodeDecodeError):
        event, data = None, "{}"
    return Entry(id=entry_id, key=(int(ms), int(seq or 0)), event=event, data=data)


@dataclass(eq=False, slots=True)
class Subscription:
    """One client's view of a job stream."""

    queue: asyncio.Queue[Entry] = field(default_factory=lambda: asyncio.Queue(maxsize=10_000))
    overflowed: bool = False
    """Set when the client fell 10,000 entries behind: it must reconnect and resume."""


@dataclass(slots=True)
class _Feed:
    subscribers: set[Subscription] = field(default_factory=set)
    task: asyncio.Task[None] | None = None


class JobStreamHub:
    """Shared readers of job streams, one per job with at least one subscriber."""

    def __init__(self, redis: Redis, keys: Keys, block_ms: int = SSE_BLOCK_MS) -> None:
        self.redis = redis
        self.keys = keys
        self.block_ms = block_ms
        self._feeds: dict[str, _Feed] = {}
        self._log = structlog.get_logger("modomo.api.hub")

    @property
    def readers(self) -> int:
        """Redis readers running now (one per watched job)."""
        return sum(1 for f in self._feeds.values() if f.task is not None)

    @property
    def subscribers(self) -> int:
        return sum(len(f.subscribers) for f in self._feeds.values())

    @contextlib.asynccontextmanager
    async def subscribe(self, job_id: str, after: str) -> AsyncIterator[Subscription]:
        """A queue of the job stream's entries after ``after`` ('$' for only new ones).

        Subscribe before reading history, then drop duplicates by id: no entry can fall in
        the gap between the two.
        """
        sub = Subscription()
        feed = self._feeds.setdefault(job_id, _Feed())
        feed.subscribers.add(sub)
        if feed.task is None:
            start = await self._last_id(job_id) if after == "$" else after
            feed.task = asyncio.create_task(self._read(job_id, feed, start))
        try:
            yield sub
        finally:
            feed.subscribers.discard(sub)
            if not feed.subscribers:
                self._feeds.pop(job_id, None)
                if feed.task is not None:
                    feed.task.cancel()

    async def _last_id(self, job_id: str) -> str:
        rows: Any = await self.redis.xrevrange(self.keys.job_events(job_id), count=1)
        return rows[0][0].decode() if rows else "0-0"

    async def _read(self, job_id: str, feed: _Feed, position: str) -> None:
        stream = self.keys.job_events(job_id)
        # A connection of its own: a blocking read must not hold one the API needs.
        async with self.redis.client() as client:
            while feed.subscribers:
                try:
                    reply: Any = await client.xread(
                        {stream: position}, block=self.block_ms, count=500
                    )
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self._log.warning("job_stream_read_failed", job_id=job_id, error=repr(exc))
                    await asyncio.sleep(1.0)
                    continue
                if not reply:
                    continue
                rows = next(iter(reply.values())) if isinstance(reply, dict) else reply[0][1]
                for entry_id, fields in rows:
                    entry = decode_entry(entry_id.decode(), fields.get(EVENT_FIELD, b""))
                    for sub in list(feed.subscribers):
                        try:
                            sub.queue.put_nowait(entry)
                        except asyncio.QueueFull:
                            # Never drop silently: the client is cut off and resumes.
                            sub.overflowed = True
                position = rows[-1][0].decode()
