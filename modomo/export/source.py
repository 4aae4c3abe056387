"""The log up to a position: where exports and evaluations read their events.

A position is a log entry id (``ms-seq``). The archive (``event_log``) holds every entry
up to the archive projector's checkpoint, and the Redis stream every entry after it
(``modomo trim`` never trims below that checkpoint), so the two together give the whole
log, whichever part of it Redis still has.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg
from redis.asyncio import Redis

from modomo.domain.events import EventBase
from modomo.projections.projector import decode_entry, parse_id
from modomo.projections.source import log_after, stream_after

ENTRY_ID = re.compile(r"\d{1,20}-\d{1,20}")
MAX_SEQ = 2**63 - 1
"""The largest sequence number the archive's bigint holds (Redis allows up to 2**64-1, but
no millisecond ever holds that many entries)."""


class PositionError(ValueError):
    """An ``--as-of`` that names no usable position; the message says why."""


def _id(ms: int, seq: int) -> str:
    return f"{ms}-{seq}"


async def _redis_last(redis: Redis, stream: str, bound: str = "+") -> str | None:
    rows: Any = await redis.xrevrange(stream, max=bound, min="-", count=1)
    return rows[0][0].decode() if rows else None


async def _archive_last(conn: asyncpg.Connection[Any], bound: str | None = None) -> str | None:
    if bound is None:
        row = await conn.fetchrow(
            "SELECT ms, seq FROM event_log ORDER BY ms DESC, seq DESC LIMIT 1"
        )
    else:
        ms, seq = parse_id(bound)
        row = await conn.fetchrow(
            "SELECT ms, seq FROM event_log WHERE (ms, seq) <= ($1, $2) "
            "ORDER BY ms DESC, seq DESC LIMIT 1",
            ms,
            seq,
        )
    return None if row is None else _id(row["ms"], row["seq"])


def _later(a: str | None, b: str | None) -> str | None:
    known = [x for x in (a, b) if x is not None]
    return max(known, key=parse_id) if known else None


async def log_end(conn: asyncpg.Connection[Any], redis: Redis, stream: str) -> str | None:
    """The last entry of the log, or None when it is empty."""
    return _later(await _archive_last(conn), await _redis_last(redis, stream))


async def resolve(
    conn: asyncpg.Connection[Any],
    redis: Redis,
    stream: str,
    as_of: str = "",
    now: datetime | None = None,
) -> str:
    """The entry id ``as_of`` stands for: the end of the log when empty, an entry id, an
    event id (UUID, found in the archive) or an ISO time (the last entry appended at or
    before it). A position past the end of the log is refused, since what an export there
    holds would change as events arrive."""
    as_of = as_of.strip()
    end = await log_end(conn, redis, stream)
    if end is None:
        raise PositionError("the log is empty: there is nothing to export yet")
    if not as_of:
        return end
    if ENTRY_ID.fullmatch(as_of):
        if parse_id(as_of) > parse_id(end):
            raise PositionError(
                f"position {as_of} is past the end of the log (last entry {end}); an export "
                "there would change as events arrive"
            )
        return as_of
    if _is_uuid(as_of):
        row = await conn.fetchrow(
            "SELECT ms, seq FROM event_log WHERE event_id = $1 ORDER BY ms, seq LIMIT 1", as_of
        )
        if row is None:
            raise PositionError(
                f"no event {as_of} in the archive (event_log); give its entry id instead if "
                "the archive projector has not reached it yet"
            )
        return _id(row["ms"], row["seq"])
    try:
        when = datetime.fromisoformat(as_of)
    except ValueError:
        raise PositionError(
            f"--as-of takes an entry id (ms-seq), an event id (UUID) or an ISO time, got {as_of!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if when > (now or datetime.now(UTC)):
        raise PositionError(f"{as_of} is in the future; an export then is not known yet")
    ms = int(when.timestamp() * 1000)
    # Redis reads an id of milliseconds alone as the last entry of that millisecond.
    found = _later(
        await _archive_last(conn, _id(ms, MAX_SEQ)), await _redis_last(redis, stream, str(ms))
    )
    if found is None:
        raise PositionError(f"the log has no entry at or before {as_of}")
    return found


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


async def archive_position(conn: asyncpg.Connection[Any]) -> str:
    """How far the archive projector has copied the log into ``event_log``."""
    found = await conn.fetchval("SELECT position FROM log_checkpoints WHERE name = 'archive'")
    return str(found) if found else "0-0"


async def events_until(
    conn: asyncpg.Connection[Any],
    redis: Redis,
    stream: str,
    position: str,
    interest: frozenset[str],
    *,
    batch: int = 5000,
) -> list[EventBase]:
    """Every readable event of the types in ``interest`` up to ``position``, in log order
    (entries the projectors would park are skipped, as their fold skips them)."""
    bound = parse_id(position)
    archived = await archive_position(conn)
    cut = min(archived, position, key=parse_id)
    out: list[EventBase] = []
    at = "0-0"
    while True:
        raw = await log_after(conn, at, batch, until_id=cut)
        if not raw:
            break
        out.extend(_decoded(raw, interest))
        at = raw[-1][0]
    at = max(at, cut, key=parse_id)
    while parse_id(at) < bound:
        raw = await stream_after(redis, stream, at, batch)
        raw = [r for r in raw if parse_id(r[0]) <= bound]
        if not raw:
            break
        out.extend(_decoded(raw, interest))
        at = raw[-1][0]
    return out


def _decoded(raw: list[tuple[str, bytes]], interest: frozenset[str]) -> list[EventBase]:
    entries = (decode_entry(entry_id, payload, interest) for entry_id, payload in raw)
    return [entry.event for entry in entries if entry.event is not None]
