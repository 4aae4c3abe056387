"""One export from start to end: resolve the position, fold the log, build the archive.

Used by ``modomo export`` (archive to a file) and by the export worker (archive to the
bucket), so both give the same bytes for the same position.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from redis.asyncio import Redis

from modomo.domain.events import ExportFormat
from modomo.domain.snapshot import INTEREST, DatasetSnapshot, fold_dataset
from modomo.export.archive import BuiltExport, build_export
from modomo.export.pack import Blobs
from modomo.export.source import events_until, resolve


@dataclass(frozen=True, slots=True)
class Snapshot:
    position: str
    dataset: DatasetSnapshot


async def snapshot_at(
    conn: asyncpg.Connection[Any], redis: Redis, stream: str, dataset_id: str, as_of: str
) -> Snapshot:
    """The dataset as the log had it at ``as_of`` (see :func:`resolve`)."""
    position = await resolve(conn, redis, stream, as_of)
    events = await events_until(conn, redis, stream, position, INTEREST)
    return Snapshot(position, fold_dataset(dataset_id, events))


async def export_dataset(
    conn: asyncpg.Connection[Any],
    redis: Redis,
    stream: str,
    blobs: Blobs,
    *,
    dataset_id: str,
    fmt: ExportFormat,
    as_of: str = "",
    reviewed_only: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[str, BuiltExport]:
    """The position ``as_of`` resolved to, and the export built there."""
    snap = await snapshot_at(conn, redis, stream, dataset_id, as_of)
    built = await build_export(
        snap.dataset,
        fmt=fmt,
        position=snap.position,
        reviewed_only=reviewed_only,
        blobs=blobs,
        progress=progress,
    )
    return snap.position, built
