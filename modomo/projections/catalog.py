"""Small projectors: datasets, and reviews."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import asyncpg

from modomo.domain.events import DatasetCreated, ReviewSubmitted
from modomo.projections.projector import LogEntry, Parked, Projector


class DatasetsProjector(Projector):
    name = "datasets"
    tables: ClassVar[tuple[str, ...]] = ("datasets",)
    interest: ClassVar[frozenset[str] | None] = frozenset({"dataset_created"})

    async def apply(
        self, conn: asyncpg.Connection[Any], entries: Sequence[LogEntry]
    ) -> list[Parked]:
        rows = [
            (e.dataset_id, e.name, e.description, e.created_by, e.at, e.org)
            for e in (entry.event for entry in entries)
            if isinstance(e, DatasetCreated)
        ]
        if rows:
            # The first event for an id wins: a duplicate of it changes nothing.
            await conn.executemany(
                "INSERT INTO datasets (dataset_id, name, description, created_by, created_at,"
                " org_id) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                rows,
            )
        return []


class ReviewsProjector(Projector):
    name = "reviews"
    tables: ClassVar[tuple[str, ...]] = ("reviews",)
    interest: ClassVar[frozenset[str] | None] = frozenset({"review_submitted"})

    async def apply(
        self, conn: asyncpg.Connection[Any], entries: Sequence[LogEntry]
    ) -> list[Parked]:
        rows = [
            (e.review_id, e.scene_id, e.object_id, e.verdict, e.note, e.reviewer, e.at, e.org)
            for e in (entry.event for entry in entries)
            if isinstance(e, ReviewSubmitted)
        ]
        if rows:
            await conn.executemany(
                "INSERT INTO reviews (review_id, scene_id, object_id, verdict, note, reviewer,"
                " created_at, org_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                " ON CONFLICT DO NOTHING",
                rows,
            )
        return []
