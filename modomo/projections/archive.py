"""The archive projector: every log entry into ``event_log``, readable or not."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import asyncpg
import msgspec

from modomo.domain.text import sanitise
from modomo.projections.projector import LogEntry, Parked, Projector
from modomo.projections.tables import stage

_COLUMNS = ("ms", "seq", "event_id", "type", "job_id", "at", "v", "payload", "org", "dataset_id")


class _Meta(msgspec.Struct):
    """The archive's columns of an event, read without decoding the rest of it."""

    event_id: str = ""
    type: str = "unreadable"
    job_id: str | None = None
    at: datetime | None = None
    v: int = 0
    org: str | None = None
    dataset_id: str | None = None


_meta = msgspec.json.Decoder(_Meta)


def _fields(entry: LogEntry) -> tuple[Any, ...]:
    ms, seq = entry.ms_seq
    try:
        meta = _meta.decode(entry.raw)
    except msgspec.DecodeError:
        # Kept as it is all the same: a later version of the code may read it.
        meta = _Meta()
    at = meta.at or datetime.fromtimestamp(ms / 1000, UTC)
    # The archive never parks: the payload is kept byte for byte, and the columns that
    # index it are made storable whatever the event holds.
    job_id = sanitise(meta.job_id) if meta.job_id is not None else None
    v = meta.v if -(2**31) <= meta.v < 2**31 else 0
    org = sanitise(meta.org) if meta.org is not None else None
    dataset_id = sanitise(meta.dataset_id) if meta.dataset_id else None
    return (
        ms,
        seq,
        sanitise(meta.event_id),
        sanitise(meta.type),
        job_id,
        at,
        v,
        entry.raw,
        org,
        dataset_id,
    )


class ArchiveProjector(Projector):
    name = "archive"
    tables: ClassVar[tuple[str, ...]] = ()
    checkpoint_table = "log_checkpoints"
    parks = False
    interest: ClassVar[frozenset[str] | None] = frozenset()

    async def apply(
        self, conn: asyncpg.Connection[Any], entries: Sequence[LogEntry]
    ) -> list[Parked]:
        staging = await stage(conn, "event_log", _COLUMNS, [_fields(e) for e in entries])
        await conn.execute(
            f"INSERT INTO event_log ({', '.join(_COLUMNS)}) SELECT {', '.join(_COLUMNS)} "
            f"FROM {staging} ON CONFLICT DO NOTHING"
        )
        await conn.execute(f"DELETE FROM {staging}")
        return []
