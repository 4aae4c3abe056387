"""Parking: an event that cannot be applied is set aside with its reason, never retried
forever, and never allowed to stop the events behind it.

An entry is parked without being tried when it cannot be read (not JSON, an unknown type
or version, a lone surrogate), refers to nothing the read model has, or holds text
PostgreSQL cannot store (a NUL character, found by
:func:`~modomo.projections.projector.decode_entry`): these depend on the entry alone, so
every projector that reads its type, and every replay, parks it the same way.

Beyond that, two kinds of failure, told apart by what raised:

- **The event's own fault** (:func:`is_poison`): PostgreSQL refused its data — SQLSTATE
  class 22 (data exception: NUL in text, a number out of range, an unsupported Unicode
  escape in jsonb), class 23 (integrity constraint), class 54 (a value over a program
  limit, such as an index row too large) — or the client could not even encode it (a lone
  surrogate, an integer too large for its column). :func:`apply_isolated` then finds the
  offending entries by bisection, each attempt inside a savepoint of the batch's
  transaction, parks exactly those and applies everything else, so the batch, its parked
  rows and the checkpoint still commit together. A refused value that a later event of the
  same batch overwrote never reaches PostgreSQL, so which entries this catches can depend
  on where batches begin; the checks above, which cover what the API and workers could
  ever let through, do not.
- **Anything else** (connection lost, server shutting down, a timeout, a lock, a missing
  table): not the event's fault. It propagates, the batch rolls back, and the runner
  retries with backoff, for as long as it takes.

Operators see parked entries and act on them (``modomo projections parked
list|retry|skip``): :func:`retry` applies an entry again after a fix, :func:`skip` marks
it resolved without applying it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from modomo.domain.text import sanitise
from modomo.projections import db
from modomo.projections.projector import (
    SWAP_LOCK,
    LogEntry,
    Parked,
    Projector,
    decode_entry,
    event_type_of,
    load_checkpoint,
    save_checkpoint,
)

POISON_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.DataError,  # SQLSTATE 22xxx, and arguments the client cannot encode
    asyncpg.IntegrityConstraintViolationError,  # 23xxx
    asyncpg.ProgramLimitExceededError,  # 54xxx
    UnicodeError,  # a lone surrogate, met while COPY encodes a row
    OverflowError,  # an integer too large for its column, met the same way
    msgspec.EncodeError,  # a jsonb value that cannot be JSON
)
"""Errors caused by the data of the events being applied, not by the server or network."""

MAX_REASON = 1000


def is_poison(exc: BaseException) -> bool:
    """True when ``exc`` is PostgreSQL (or the client) refusing the data itself."""
    return isinstance(exc, POISON_ERRORS)


def reason_of(exc: BaseException) -> str:
    """A storable one-line reason naming the error class and SQLSTATE."""
    state = getattr(exc, "sqlstate", None)
    head = f"{type(exc).__name__}" + (f" (SQLSTATE {state})" if state else "")
    text = " ".join(str(exc).split())
    return sanitise(f"{head}: {text}")[:MAX_REASON]


async def apply_isolated(
    conn: asyncpg.Connection[Any], projector: Projector, entries: Sequence[LogEntry]
) -> list[Parked]:
    """Apply ``entries`` inside the caller's transaction; park each entry whose data
    PostgreSQL refuses and apply all the others, in log order.

    The whole batch is tried first; when it is refused it is split in halves, each tried
    in a savepoint, down to the single entries at fault. Errors of any other kind
    propagate untouched.
    """
    try:
        async with conn.transaction():
            return await projector.apply(conn, entries)
    except POISON_ERRORS as exc:
        # Whatever the failed attempt left in memory describes rows that were rolled back.
        projector.reset()
        if len(entries) == 1:
            entry = entries[0]
            return [Parked(entry.entry_id, event_type_of(entry), reason_of(exc), entry.raw)]
    middle = len(entries) // 2
    first = await apply_isolated(conn, projector, entries[:middle])
    return first + await apply_isolated(conn, projector, entries[middle:])


async def park(conn: asyncpg.Connection[Any], projector: str, parked: Sequence[Parked]) -> int:
    """Record ``parked`` (inside the caller's transaction); returns how many are new."""
    if not parked:
        return 0
    status = await conn.execute(
        "INSERT INTO parked_events (projector, entry_id, event_type, reason, payload) "
        "SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::bytea[]) "
        "ON CONFLICT DO NOTHING",
        projector,
        [p.entry_id for p in parked],
        [sanitise(p.event_type) for p in parked],
        [sanitise(p.reason)[:MAX_REASON] for p in parked],
        [p.payload for p in parked],
    )
    return int(status.rsplit(" ", 1)[-1])


@dataclass(frozen=True, slots=True)
class ParkedEntry:
    """One parked entry, as operators see it."""

    projector: str
    entry_id: str
    event_type: str
    reason: str
    parked_at: datetime
    attempts: int
    resolution: str | None
    resolved_at: datetime | None


async def listing(
    conn: asyncpg.Connection[Any],
    projector: str | None = None,
    include_resolved: bool = False,
    limit: int = 100,
) -> list[ParkedEntry]:
    """Parked entries in log order, unresolved ones only unless asked."""
    async with db.transaction(conn):
        rows = await conn.fetch(
            "SELECT projector, entry_id, event_type, reason, parked_at, attempts, resolution,"
            " resolved_at FROM parked_events WHERE ($1::text IS NULL OR projector = $1)"
            " AND ($2 OR resolved_at IS NULL)"
            " ORDER BY split_part(entry_id, '-', 1)::bigint, split_part(entry_id, '-', 2)::bigint,"
            " projector LIMIT $3",
            projector,
            include_resolved,
            limit,
        )
    return [ParkedEntry(**dict(r)) for r in rows]


class ParkedError(RuntimeError):
    """The parked entry cannot be acted on as asked; the message says why."""


async def _open_row(conn: asyncpg.Connection[Any], projector: str, entry_id: str) -> asyncpg.Record:
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT payload, resolution FROM parked_events WHERE projector = $1 AND entry_id = $2"
        " FOR UPDATE",
        projector,
        entry_id,
    )
    if row is None:
        raise ParkedError(f"no parked entry {entry_id} for projector {projector}")
    if row["resolution"] is not None:
        raise ParkedError(f"{projector} {entry_id} was already resolved ({row['resolution']})")
    return row


async def retry(conn: asyncpg.Connection[Any], projector: Projector, entry_id: str) -> str | None:
    """Apply a parked entry again (after a fix); None when it applied and is now resolved,
    else the reason it is still refused (it stays parked, its attempts counted).

    Runs with the projector's checkpoint row locked, as a batch does, and bumps the
    checkpoint's generation so the active instance forgets what it remembered about the
    rows this changed.
    """
    async with db.transaction(conn):
        await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", SWAP_LOCK)
        checkpoint = await load_checkpoint(conn, projector, lock=True)
        row = await _open_row(conn, projector.name, entry_id)
        entry = decode_entry(entry_id, bytes(row["payload"]), projector.interest)
        if entry.event is None and not entry.skipped:
            refused = [
                Parked(entry_id, event_type_of(entry), entry.error or "unreadable", entry.raw)
            ]
        else:
            projector.reset()
            await projector.prepare(conn)
            refused = await apply_isolated(conn, projector, [entry])
        if refused:
            reason = sanitise(refused[0].reason)[:MAX_REASON]
            await conn.execute(
                "UPDATE parked_events SET reason = $3, attempts = attempts + 1"
                " WHERE projector = $1 AND entry_id = $2",
                projector.name,
                entry_id,
                reason,
            )
            return reason
        await _resolve(conn, projector.name, entry_id, "retried")
        await save_checkpoint(
            conn, projector, replace(checkpoint, generation=checkpoint.generation + 1)
        )
    return None


async def skip(conn: asyncpg.Connection[Any], projector: str, entry_id: str) -> None:
    """Mark a parked entry resolved without applying it."""
    async with db.transaction(conn):
        await _open_row(conn, projector, entry_id)
        await _resolve(conn, projector, entry_id, "skipped")


async def _resolve(
    conn: asyncpg.Connection[Any], projector: str, entry_id: str, resolution: str
) -> None:
    await conn.execute(
        "UPDATE parked_events SET resolution = $3, resolved_at = now()"
        " WHERE projector = $1 AND entry_id = $2",
        projector,
        entry_id,
        resolution,
    )


async def open_counts(conn: asyncpg.Connection[Any]) -> dict[str, int]:
    """Unresolved parked entries per projector."""
    async with db.transaction(conn):
        rows = await conn.fetch(
            "SELECT projector, count(*) AS n FROM parked_events WHERE resolved_at IS NULL"
            " GROUP BY projector"
        )
    return {r["projector"]: int(r["n"]) for r in rows}
