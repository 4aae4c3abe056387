"""One client following a job over Server-Sent Events: history in pages, then live.

- **Bounded reads.** History comes in ``XRANGE ... COUNT`` pages after the client's
  position (``Last-Event-ID``, or the start); each page is sent before the next is read,
  so a client costs one page of memory however long the job, and a reconnect reads only
  what it missed. Nothing is folded: whether the job has ended is read off the entries.
- **No gap, no repeat.** The client subscribes to the live feed before reading history
  and skips, by id, whatever it has already sent.
- **The end.** The stream ends after a ``job_done`` entry that is the stream's last (a job
  an operator reopened goes on past its earlier one), or at once when the client resumes
  after it. A job started elsewhere than ``POST /jobs`` has no ``job_done``: its stream
  stays open, with keep-alives, until the client leaves.
- **Trimmed history.** When entries after the client's position may have been removed
  from the stream (trimmed from its head past that position, or deleted), the first
  message says so: ``event: gap`` with the client's position and the oldest entry left,
  and no ``id:`` of its own; then the stream goes on from that entry.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import msgspec
from redis.exceptions import ResponseError

from modomo.api import metrics
from modomo.api.hub import KEEP_ALIVE, Entry, JobStreamHub, Overflowed, frame_entry
from modomo.read import archive
from modomo.read.sql import Conn
from modomo.streams.entries import parse_id
from modomo.streams.keys import EVENT_FIELD

HISTORY_PAGE = 100
"""Entries per history read: a bounded read, and one write to the client."""


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What one ``XINFO STREAM`` tells about a job stream when a client connects."""

    last: Entry | None
    first: str | None
    trimmed: bool
    """Entries were removed from the head (XTRIM), so the first is not the first written."""
    max_deleted: tuple[int, int]
    """The last entry removed by XDEL (Redis 7; XTRIM leaves it alone)."""

    def missed(self, sent: tuple[int, int]) -> bool:
        """Whether a client that has everything up to ``sent`` may have lost entries."""
        if self.max_deleted > sent:
            return True
        return self.trimmed and self.first is not None and parse_id(self.first) > sent


async def stream_info(hub: JobStreamHub, job_id: str) -> StreamInfo | None:
    """The stream's ends and what was removed from it; None when there is no such stream."""
    try:
        async with hub.reads:
            info: Any = await hub.redis.xinfo_stream(hub.keys.job_events(job_id))
    except ResponseError:
        return None
    last, first = info.get("last-entry"), info.get("first-entry")
    entry = None
    if last:
        entry_id, fields = last
        entry = frame_entry(entry_id, [k for kv in fields.items() for k in kv])
    added, length = info.get("entries-added"), info.get("length")  # Redis 7
    return StreamInfo(
        last=entry,
        first=first[0].decode() if first else None,
        trimmed=added is not None and length is not None and int(added) > int(length),
        max_deleted=parse_id(info.get("max-deleted-entry-id") or b"0-0"),
    )


def _after(entries: list[Entry], sent: tuple[int, int]) -> list[Entry]:
    """The entries not sent yet, up to and including the job's end if it is among them."""
    fresh = [e for e in entries if e.key > sent]
    for i, entry in enumerate(fresh):
        if entry.ends_job:
            return fresh[: i + 1]
    return fresh


def _gap(after: str, info: StreamInfo) -> bytes:
    data = msgspec.json.encode({"type": "gap", "after": after, "first": info.first})
    return b"event: gap\r\ndata: %s\r\n\r\n" % data


async def follow(
    hub: JobStreamHub, job_id: str, after: str, info: StreamInfo
) -> AsyncIterator[bytes]:
    """The job's SSE messages after entry ``after`` ("0-0": from the start), framed."""
    sent = parse_id(after)
    last = info.last
    metrics.SSE_CLIENTS.inc()
    try:
        async with hub.subscribe(job_id, last.id if last else "0-0") as sub:
            if info.missed(sent):
                yield _gap(after, info)
            if last is not None and last.ends_job and last.key <= sent:
                return  # resumed after the job's end: nothing more will come
            position, tail_ends = after, False
            while True:
                page = await hub.page(job_id, position, HISTORY_PAGE)
                if page:
                    yield b"".join(e.frame for e in page)
                    sent, position, tail_ends = page[-1].key, page[-1].id, page[-1].ends_job
                if len(page) < HISTORY_PAGE:
                    break
            # Caught up with the stream: it ends here if its last entry is the end.
            ended = tail_ends
            while not ended:
                try:
                    entries = await sub.next()
                except Overflowed:
                    return  # the client reconnects with Last-Event-ID and misses nothing
                if entries is None:
                    yield KEEP_ALIVE
                    continue
                if entries[0].key <= sent or any(e.ends_job for e in entries):
                    entries = _after(entries, sent)
                    ended = bool(entries) and entries[-1].ends_job
                if entries:
                    sent = entries[-1].key
                    yield (
                        entries[0].frame
                        if len(entries) == 1
                        else b"".join(e.frame for e in entries)
                    )
    finally:
        metrics.SSE_CLIENTS.dec()


ARCHIVE_PAGE = 500
"""Archived events read per query when serving an expired job's stream."""


async def archived(db: Conn, job_id: str, after: str) -> AsyncIterator[bytes]:
    """A finished job's events from the PostgreSQL archive (its Redis stream has expired),
    after ``after``, page by page; then the end of the stream."""
    position = parse_id(after)
    while page := await archive.job_events_after(db, job_id, position, ARCHIVE_PAGE):
        yield b"".join(frame_entry(i.encode(), [EVENT_FIELD, payload]).frame for i, payload in page)
        position = parse_id(page[-1][0])
