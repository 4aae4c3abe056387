"""Applying one batch of log entries, its parked entries and its checkpoint, in one
transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from modomo.projections import db
from modomo.projections.lease import Lease
from modomo.projections.parking import apply_isolated, park
from modomo.projections.projector import (
    SWAP_LOCK,
    Checkpoint,
    LogEntry,
    Parked,
    Projector,
    event_type_of,
    load_checkpoint,
    save_checkpoint,
)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of a batch: where the projector stands now, whether the batch was
    applied (not when the checkpoint had moved under the caller), and how many entries
    it newly parked."""

    checkpoint: Checkpoint
    applied: bool
    parked: int = 0


async def apply_batch(
    conn: asyncpg.Connection[Any],
    projector: Projector,
    entries: Sequence[LogEntry],
    expected: Checkpoint,
    lease: Lease | None = None,
) -> Outcome:
    """Apply ``entries`` and move the checkpoint from ``expected`` past them, in one
    transaction on a connection from :func:`modomo.projections.db.connect`.

    Nothing is applied when the checkpoint found is not ``expected`` (a replay swapped the
    tables, an operator's retry changed them, another instance moved it): the outcome then
    carries the checkpoint found. With ``lease``, the batch commits only while this
    instance still holds it (:class:`~modomo.projections.lease.LeaseLost` otherwise).
    """
    async with db.transaction(conn):
        await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", SWAP_LOCK)
        if lease is not None:
            await lease.renew(conn)
        found = await load_checkpoint(conn, projector, lock=True)
        if (found.position, found.generation) != (expected.position, expected.generation):
            return Outcome(found, applied=False)
        parked = await apply_isolated(conn, projector, entries)
        if projector.parks:
            parked.extend(
                Parked(e.entry_id, event_type_of(e), e.error or "unreadable", e.raw)
                for e in entries
                if e.event is None and not e.skipped
            )
        else:
            parked = []
        new = await park(conn, projector.name, parked)
        after = Checkpoint(entries[-1].entry_id, found.seen + len(entries), found.generation)
        await save_checkpoint(conn, projector, after)
    return Outcome(after, applied=True, parked=new)
