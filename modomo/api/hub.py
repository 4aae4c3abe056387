"""Fan-out of job streams: one Redis reader per process, however many jobs are watched.

A browser on an SSE connection must cost neither a Redis connection nor a reader per job.
One task per process reads every watched job stream with one ``XREAD BLOCK`` over all of
them (plus a wake-up stream of this process, so a newly watched job joins the read at
once). Each entry is framed as an SSE message once, appended to its job's buffer, and the
job's subscribers are woken together; each sends everything it has not sent in one write.

A subscriber more than ``max_behind`` entries behind is cut off (:class:`Overflowed`): it
reconnects with ``Last-Event-ID`` and misses nothing. The buffer keeps only what some
subscriber has not taken yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog
from redis.asyncio import Redis

from modomo.domain.events import EVENT_TYPES, JobCompleted
from modomo.settings import SSE_BLOCK_MS
from modomo.streams import raw
from modomo.streams.entries import RawEntries, field_of, next_id, parse_id, streams_of
from modomo.streams.keys import EVENT_FIELD, Keys

_DONE = JobCompleted.__struct_config__.tag
KEEP_ALIVE = b": keep-alive\r\n\r\n"


def _libc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(
            ctypes.util.find_library("c") or "libc.so.6"
        ).malloc_trim
    except (OSError, AttributeError):
        return None  # not glibc: nothing to trim
    return trim


_malloc_trim = _libc_trim()


def release_memory() -> None:
    """Hand the heap that a burst of clients left free back to the OS. glibc keeps it
    otherwise, and a process that served 200 history replays at once would stay large."""
    if _malloc_trim is not None:
        _malloc_trim(0)


class _Head(msgspec.Struct):
    type: str


_head = msgspec.json.Decoder(_Head)


@dataclass(frozen=True, slots=True)
class Entry:
    """A job-stream entry, framed once as an SSE message for every client."""

    id: str
    key: tuple[int, int]
    tag: str
    frame: bytes

    @property
    def ends_job(self) -> bool:
        return self.tag == _DONE


def frame_entry(entry_id: bytes, flat: list[bytes]) -> Entry:
    """The entry as an SSE message: ``id:`` its entry id, ``event:`` its type, ``data:``
    the stored JSON as it is (never decoded and re-encoded). Only the type is read; an
    entry without a readable one is sent as ``unreadable`` with ``{}``."""
    raw_event = field_of(flat, EVENT_FIELD) or b""
    try:
        tag = _head.decode(raw_event).type
    except msgspec.DecodeError:
        tag = ""
    if tag not in EVENT_TYPES:
        tag, raw_event = "unreadable", b"{}"
    ident = entry_id.decode()
    frame = b"id: %s\r\nevent: %s\r\ndata: %s\r\n\r\n" % (entry_id, tag.encode(), raw_event)
    return Entry(id=ident, key=parse_id(ident), tag=tag, frame=frame)


class Overflowed(Exception):
    """The subscriber fell too far behind; it must reconnect and resume."""


@dataclass(eq=False, slots=True)
class Subscription:
    """One client's place in its job's buffer."""

    feed: _Feed
    cursor: int
    beat: int

    async def next(self) -> list[Entry] | None:
        """Entries not taken yet, waiting for one; None when a keep-alive is due first.

        Raises :class:`Overflowed` when they were dropped before this client took them.
        """
        feed = self.feed
        while self.cursor >= feed.end:
            if self.beat != feed.beat:
                self.beat = feed.beat
                return None
            await feed.arrived.wait()
        if self.cursor < feed.start:
            raise Overflowed
        taken = feed.entries[self.cursor - feed.start :]
        self.cursor = feed.end
        return taken


@dataclass(eq=False, slots=True)
class _Feed:
    stream: str
    position: str
    """The last entry id the reader has taken from the stream."""
    subscribers: set[Subscription] = field(default_factory=set)
    entries: list[Entry] = field(default_factory=list)
    start: int = 0
    """Sequence number of ``entries[0]`` (cursors count entries since the feed began)."""
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    beat: int = 0
    """Counts keep-alive periods: one timer for every client, not a timeout per wait."""

    @property
    def end(self) -> int:
        return self.start + len(self.entries)

    def wake(self) -> None:
        self.arrived.set()
        self.arrived.clear()  # the waiters are woken already; later ones wait again

    def add(self, entries: list[Entry], max_behind: int) -> None:
        self.entries.extend(entries)
        self.wake()
        if len(self.entries) > 256:
            lowest = min((s.cursor for s in self.subscribers), default=self.end)
            drop = max(lowest, self.end - max_behind) - self.start
            if drop > 0:
                del self.entries[:drop]
                self.start += drop


class JobStreamHub:
    """Watched job streams and the one task that reads them all.

    ``block_ms`` (``SSE_BLOCK_MS``) stays under the Redis client's socket timeout, which
    the settings check; a newly watched job wakes the read at once, however long it blocks.
    """

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        block_ms: int = SSE_BLOCK_MS,
        max_behind: int = 10_000,
        keep_alive_s: float = 15.0,
        concurrent_reads: int = 16,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.block_ms = block_ms
        self.max_behind = max_behind
        self.keep_alive_s = keep_alive_s
        self._beating: asyncio.TimerHandle | None = None
        # A burst of clients connecting at once must not become a burst of connections.
        self.reads = asyncio.Semaphore(concurrent_reads)
        self.wake_key = keys.api_wake(uuid.uuid4().hex)
        self._wake_position = "0-0"
        self._feeds: dict[str, _Feed] = {}
        self._task: asyncio.Task[None] | None = None
        self._log = structlog.get_logger("modomo.api.hub")

    @property
    def readers(self) -> int:
        """Redis readers running now: one per process while any job is watched."""
        return int(self._task is not None and not self._task.done())

    @property
    def subscribers(self) -> int:
        return sum(len(f.subscribers) for f in self._feeds.values())

    @property
    def watched(self) -> int:
        return len(self._feeds)

    @contextlib.asynccontextmanager
    async def subscribe(self, job_id: str, last_id: str) -> AsyncIterator[Subscription]:
        """Entries of the job's stream from now on (for a job not watched yet: after
        ``last_id``, the stream's last entry id as the caller saw it).

        Subscribe before reading history, then drop what was already sent by id: no
        entry falls in the gap between the two.
        """
        feed = self._feeds.get(job_id)
        fresh = feed is None
        if feed is None:
            feed = self._feeds[job_id] = _Feed(self.keys.job_events(job_id), last_id)
        sub = Subscription(feed, feed.end, feed.beat)
        feed.subscribers.add(sub)
        if self._beating is None:
            self._beating = asyncio.get_running_loop().call_later(self.keep_alive_s, self._beat)
        try:
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self._read())
            elif fresh:
                await self._wake()
            yield sub
        finally:
            feed.subscribers.discard(sub)
            if not feed.subscribers and self._feeds.get(job_id) is feed:
                del self._feeds[job_id]
                if not self._feeds:
                    release_memory()  # the last client of all has left

    def _beat(self) -> None:
        """Every keep-alive period: wake every client, to send a keep-alive if idle."""
        self._beating = None
        for feed in self._feeds.values():
            feed.beat += 1
            feed.wake()
        if self._feeds:
            self._beating = asyncio.get_running_loop().call_later(self.keep_alive_s, self._beat)

    async def page(self, job_id: str, after: str, count: int) -> list[Entry]:
        """Up to ``count`` entries of the job's stream after ``after``: one bounded read."""
        async with self.reads:
            rows: RawEntries = await raw.execute(
                self.redis,
                b"XRANGE",
                self.keys.job_events(job_id),
                next_id(after),
                b"+",
                b"COUNT",
                count,
            )
        return [frame_entry(entry_id, flat) for entry_id, flat in rows]

    async def _wake(self) -> None:
        """Make the reader's blocked XREAD return, so it reads a newly watched stream."""
        async with self.reads, self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(self.wake_key, {"w": "1"}, maxlen=1, approximate=False)
            pipe.pexpire(self.wake_key, self.block_ms * 4)
            await pipe.execute()

    async def _read(self) -> None:
        while self._feeds:
            feeds = list(self._feeds.values())
            try:
                reply: Any = await raw.execute(
                    self.redis,
                    b"XREAD",
                    b"COUNT",
                    1000,
                    b"BLOCK",
                    self.block_ms,
                    b"STREAMS",
                    self.wake_key,
                    *(f.stream for f in feeds),
                    self._wake_position,
                    *(f.position for f in feeds),
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._log.warning("job_streams_read_failed", error=repr(exc))
                await asyncio.sleep(1.0)
                continue
            by_stream = {f.stream: f for f in feeds}
            for key, rows in streams_of(reply):
                stream = key.decode()
                if stream == self.wake_key:
                    self._wake_position = rows[-1][0].decode()
                    continue
                feed = by_stream[stream]
                feed.position = rows[-1][0].decode()
                if feed.subscribers:
                    feed.add([frame_entry(i, flat) for i, flat in rows], self.max_behind)
        self._task = None

    async def close(self) -> None:
        if self._beating is not None:
            self._beating.cancel()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
