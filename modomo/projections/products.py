"""Projectors of the dataset products: ``exports`` and ``evaluations``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import asyncpg
import msgspec

from modomo.domain.events import EvaluationRecorded
from modomo.domain.products import ExportRow, apply_export, evaluation_row
from modomo.domain.views import Unapplicable
from modomo.projections.projector import LogEntry, Parked, Projector, event_type_of
from modomo.projections.tables import upsert

EXPORT_COLUMNS = tuple(ExportRow.__struct_fields__)
_astuple = msgspec.structs.astuple


class ExportsProjector(Projector):
    name = "exports"
    tables: ClassVar[tuple[str, ...]] = ("exports",)
    interest: ClassVar[frozenset[str] | None] = frozenset(
        {"export_requested", "export_started", "export_completed", "export_failed"}
    )

    async def apply(
        self, conn: asyncpg.Connection[Any], entries: Sequence[LogEntry]
    ) -> list[Parked]:
        ids = {e.event.export_id for e in entries if e.event is not None}  # type: ignore[union-attr]
        if not ids:
            return []
        rows: dict[str, ExportRow] = {
            r["export_id"]: ExportRow(**dict(r))
            for r in await conn.fetch(
                f"SELECT {', '.join(EXPORT_COLUMNS)} FROM exports "
                "WHERE export_id = ANY($1::text[])",
                list(ids),
            )
        }
        parked: list[Parked] = []
        changed: set[str] = set()
        for entry in entries:
            event: Any = entry.event
            if event is None:
                continue
            try:
                rows[event.export_id] = apply_export(rows.get(event.export_id), event)
            except Unapplicable as exc:
                parked.append(Parked(entry.entry_id, event_type_of(entry), str(exc), entry.raw))
                continue
            changed.add(event.export_id)
        await upsert(
            conn,
            "exports",
            ("export_id",),
            EXPORT_COLUMNS,
            (_astuple(rows[i]) for i in sorted(changed)),
        )
        return parked


class EvaluationsProjector(Projector):
    name = "evaluations"
    tables: ClassVar[tuple[str, ...]] = ("evaluations",)
    interest: ClassVar[frozenset[str] | None] = frozenset({"evaluation_recorded"})

    async def apply(
        self, conn: asyncpg.Connection[Any], entries: Sequence[LogEntry]
    ) -> list[Parked]:
        rows = [evaluation_row(e.event) for e in entries if isinstance(e.event, EvaluationRecorded)]
        if rows:
            cols = tuple(type(rows[0]).__struct_fields__)
            # One event, one row: a duplicate of the event changes nothing.
            await conn.executemany(
                f"INSERT INTO evaluations ({', '.join(cols)}) VALUES "
                f"({', '.join(f'${i + 1}' for i in range(len(cols)))}) ON CONFLICT DO NOTHING",
                [_astuple(r) for r in rows],
            )
        return []
