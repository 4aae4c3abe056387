"""Reading the log in order: from the ``event_log`` archive, or from the Redis stream."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from modomo.projections.projector import RawEntry
from modomo.streams import raw
from modomo.streams.entries import entries_of, field_of, format_id, parse_id
from modomo.streams.keys import EVENT_FIELD


async def log_after(
    conn: asyncpg.Connection[Any],
    position: str,
    limit: int,
    until_id: str | None = None,
    until_at: datetime | None = None,
) -> list[RawEntry]:
    """Up to ``limit`` archived entries after ``position``, in log order."""
    ms, seq = parse_id(position)
    clauses = ["(ms, seq) > ($1, $2)"]
    args: list[Any] = [ms, seq, limit]
    if until_id is not None:
        until_ms, until_seq = parse_id(until_id)
        clauses.append(f"(ms, seq) <= (${len(args) + 1}, ${len(args) + 2})")
        args += [until_ms, until_seq]
    if until_at is not None:
        clauses.append(f"at <= ${len(args) + 1}")
        args.append(until_at)
    rows = await conn.fetch(
        f"SELECT ms, seq, payload FROM event_log WHERE {' AND '.join(clauses)} "
        "ORDER BY ms, seq LIMIT $3",
        *args,
    )
    return [(format_id(r["ms"], r["seq"]), bytes(r["payload"])) for r in rows]


async def stream_after(
    redis: Redis, stream: str, position: str, limit: int, block_ms: int | None = None
) -> list[RawEntry]:
    """Up to ``limit`` entries of the Redis log after ``position``, in log order; with
    ``block_ms``, waits that long for one when there is none yet."""
    wait = (b"BLOCK", block_ms) if block_ms is not None else ()
    reply = await raw.execute(redis, b"XREAD", b"COUNT", limit, *wait, b"STREAMS", stream, position)
    # An entry not written by EventLog gets parked as unreadable, whatever it holds.
    return [
        (entry_id.decode(), field_of(flat, EVENT_FIELD) or b"")
        for entry_id, flat in entries_of(reply)
    ]


async def stream_gap(redis: Redis, stream: str, seen: int) -> bool:
    """True when entries a reader has not seen were removed from ``stream``.

    ``seen`` counts the entries the reader has read since the stream began. Redis keeps
    how many entries were ever added; those beyond the current length were trimmed, and
    if the reader has seen fewer than that, some of them it never read.
    """
    try:
        info: Any = await redis.xinfo_stream(stream)
    except ResponseError:
        return False  # no stream yet
    added, length = info.get("entries-added"), info.get("length")
    if added is None or length is None:
        return False
    return int(added) - int(length) > seen


async def entries_added(redis: Redis, stream: str) -> int | None:
    """How many entries were ever appended to ``stream`` (None when it does not exist)."""
    try:
        info: Any = await redis.xinfo_stream(stream)
    except ResponseError:
        return None
    value = info.get("entries-added", info.get(b"entries-added"))
    return int(value) if value is not None else None
