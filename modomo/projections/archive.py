"""The archive projector: every log entry into ``event_log``, readable or not."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar

import asyncpg
import msgspec

from modomo.projections.projector import LogEntry, Parked, Projector
from modomo.projections.tables import make_staging

_COLUMNS = ("ms", "seq", "event_id", "type", "job_id", "at", "v", "payload")


class _Meta(msgspec.Struct):
    """The archive's columns of an event, read without decoding the rest of it."""

    event_id: str = ""
    type: str = "unreadable"
    job_id: str | None = None
    at: datetime | None = None
    v: int = 0


_meta = msgspec.json.Decoder(_Meta)


def _fields(entry: LogEntry) -> tuple[Any, ...]:
    ms, seq = entry.ms_seq
    try:
        meta = _meta.decode(entry.raw)
    except msgspec.DecodeError:
        # Kept as it is all the same: a later version of the code may read it.
        meta = _Meta()
    at = meta.at or datetime.fromtimestamp(ms / 1000, UTC)
    return (ms, seq, meta.event_id, meta.type, meta.job_id, at, meta.v, entry.raw)


class ArchiveProjector(Projector):
    name = "archive"
    tables: ClassVar[tuple[str, ...]] = ()
    checkpoint_table = "log_checkpoints"
    parks = False
    interest: ClassVar[frozenset[str] | None] = frozenset()

    async def prepare(self, conn: asyncpg.Connection[Any]) -> None:
        await make_staging(conn, "event_log")

    async def apply(
        self, conn: asyncpg.Connection[Any], entries: Sequence[LogEntry]
    ) -> list[Parked]:
        await conn.copy_records_to_table(
            "_event_log", records=[_fields(e) for e in entries], columns=list(_COLUMNS)
        )
        await conn.execute(
            f"INSERT INTO event_log ({', '.join(_COLUMNS)}) SELECT {', '.join(_COLUMNS)} "
            "FROM _event_log ON CONFLICT DO NOTHING"
        )
        await conn.execute("DELETE FROM _event_log")
        return []
