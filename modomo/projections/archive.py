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
_raw = msgspec.json.Decoder(dict[str, Any])


def _fields(entry: LogEntry) -> tuple[Any, ...]:
    ms, seq = entry.ms_seq
    event = entry.event
    if event is not None:
        return (
            ms,
            seq,
            event.event_id,
            event.__struct_config__.tag,
            getattr(event, "job_id", None),
            event.at,
            event.v,
            entry.raw,
        )
    # Kept as it is: a later version of the code may read what this one cannot.
    try:
        raw = _raw.decode(entry.raw)
    except msgspec.DecodeError:
        raw = {}
    at = datetime.fromtimestamp(ms / 1000, UTC)
    return (
        ms,
        seq,
        str(raw.get("event_id", "")),
        str(raw.get("type", "unreadable")),
        raw.get("job_id") if isinstance(raw.get("job_id"), str) else None,
        at,
        raw.get("v") if isinstance(raw.get("v"), int) else 0,
        entry.raw,
    )


class ArchiveProjector(Projector):
    name = "archive"
    tables: ClassVar[tuple[str, ...]] = ()
    checkpoint_table = "log_checkpoints"
    parks = False

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
        await conn.execute("TRUNCATE _event_log")
        return []
