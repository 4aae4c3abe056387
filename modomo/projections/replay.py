"""Rebuilding read models from the log, blue/green.

The chosen projectors fold the whole archive (``event_log``, or the Redis stream) into a
shadow schema built from the read-model migrations, while the live tables keep serving.
Then, in one transaction holding the swap lock (which every projector batch takes
shared), each rebuilt table replaces its live twin and the projectors' checkpoints and
parked entries move with them. A reader sees the old table or the new one, never a half
built one; a live projector notices its checkpoint moved and carries on from the new one.

``until`` stops at an entry id or a time and keeps the result in a schema of its own (the
read models as they stood then); ``dry_run`` reports what would change and keeps nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
from redis.asyncio import Redis

from modomo.projections import db
from modomo.projections.batch import apply_batch
from modomo.projections.db import quote
from modomo.projections.migrate import create_read_schema
from modomo.projections.projector import (
    SWAP_LOCK,
    Checkpoint,
    Projector,
    RawEntry,
    parse_id,
)
from modomo.projections.source import log_after, stream_after
from modomo.settings import Settings
from modomo.streams.keys import Keys


@dataclass(slots=True)
class ReplayResult:
    projectors: list[str]
    events: int = 0
    last_position: str = "0-0"
    schema: str = ""
    swapped: bool = False
    parked: int = 0
    """Entries parked while rebuilding (the same ones the live projectors parked)."""
    changes: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per table, with ``dry_run``: (rows only in the live table, rows only in the rebuilt)."""


class ReplayError(RuntimeError):
    """The replay cannot run as asked; the message says why."""


async def replay(
    settings: Settings,
    projectors: Sequence[Projector],
    *,
    redis: Redis | None = None,
    until_id: str | None = None,
    until_at: datetime | None = None,
    into: str | None = None,
    dry_run: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ReplayResult:
    """Rebuild ``projectors`` from the archive (or from ``redis`` when given)."""
    if any(not p.tables for p in projectors):
        raise ReplayError("the archive is the replay's source and cannot be rebuilt from it")
    point_in_time = until_id is not None or until_at is not None
    if redis is not None and until_at is not None:
        raise ReplayError("--until with a time needs the archive as source; give an entry id")
    live = settings.db_schema
    target = into or (f"{live}_asof" if point_in_time else f"{live}_shadow")
    if target in (live, settings.db_log_schema):
        raise ReplayError(f"cannot rebuild into the live schema {target!r}")
    result = ReplayResult(projectors=[p.name for p in projectors], schema=target)
    admin = await db.connect(settings, pooled=True)
    try:
        await create_read_schema(admin, target)
        shadow = await db.connect(settings, schema=target, pooled=True)
        try:
            for projector in projectors:
                projector.reset()
                async with db.transaction(shadow):
                    await projector.prepare(shadow)
            await _fold_all(
                shadow,
                projectors,
                result,
                redis,
                Keys(settings.redis_prefix),
                settings.projector_batch,
                until_id,
                until_at,
                progress,
            )
        finally:
            await shadow.close()
        if dry_run:
            result.changes = await _compare(admin, live, target, projectors)
            await admin.execute(f"DROP SCHEMA {quote(target)} CASCADE")
        elif not point_in_time and into is None:
            await _swap(admin, live, target, projectors)
            result.swapped = True
    finally:
        await admin.close()
    return result


async def _fold_all(
    conn: asyncpg.Connection[Any],
    projectors: Sequence[Projector],
    result: ReplayResult,
    redis: Redis | None,
    keys: Keys,
    batch: int,
    until_id: str | None,
    until_at: datetime | None,
    progress: Callable[[int], None] | None,
) -> None:
    position = "0-0"
    checkpoints = {p.name: Checkpoint() for p in projectors}
    while True:
        entries: list[RawEntry]
        if redis is None:
            async with db.transaction(conn):
                entries = await log_after(conn, position, batch, until_id, until_at)
        else:
            entries = await stream_after(redis, keys.events, position, batch)
            if until_id is not None:
                bound = parse_id(until_id)
                entries = [e for e in entries if parse_id(e[0]) <= bound]
        if not entries:
            return
        for projector in projectors:
            outcome = await apply_batch(
                conn, projector, projector.decode(entries), checkpoints[projector.name]
            )
            if not outcome.applied:
                raise ReplayError(
                    f"the shadow checkpoint of {projector.name} moved to "
                    f"{outcome.checkpoint.position}"
                )
            checkpoints[projector.name] = outcome.checkpoint
            result.parked += outcome.parked
        position = entries[-1][0]
        result.events += len(entries)
        result.last_position = position
        if progress is not None:
            progress(result.events)


async def _swap(
    conn: asyncpg.Connection[Any], live: str, shadow: str, projectors: Sequence[Projector]
) -> None:
    names = [p.name for p in projectors]
    live_q, shadow_q = quote(live), quote(shadow)
    async with conn.transaction():
        # Waits for running projector batches; new ones wait for the swap.
        await conn.execute("SELECT pg_advisory_xact_lock($1)", SWAP_LOCK)
        for projector in projectors:
            for table in projector.tables:
                await conn.execute(f"DROP TABLE IF EXISTS {live_q}.{quote(table)}")
                await conn.execute(f"ALTER TABLE {shadow_q}.{quote(table)} SET SCHEMA {live_q}")
        # An entry an operator skipped stays skipped when the rebuild parks it again.
        await conn.execute(
            f"UPDATE {shadow_q}.parked_events s SET resolution = l.resolution,"
            f" resolved_at = l.resolved_at FROM {live_q}.parked_events l"
            " WHERE l.projector = s.projector AND l.entry_id = s.entry_id"
            " AND l.resolution = 'skipped'"
        )
        # The live instances must notice their tables changed even where the position
        # did not: the generation moves past any they have seen.
        await conn.execute(
            f"UPDATE {shadow_q}.projector_checkpoints s SET generation = l.generation + 1"
            f" FROM {live_q}.projector_checkpoints l WHERE l.name = s.name"
        )
        for table in ("projector_checkpoints", "parked_events"):
            column = "name" if table == "projector_checkpoints" else "projector"
            await conn.execute(f"DELETE FROM {live_q}.{table} WHERE {column} = ANY($1)", names)
            await conn.execute(
                f"INSERT INTO {live_q}.{table} SELECT * FROM {shadow_q}.{table} "
                f"WHERE {column} = ANY($1)",
                names,
            )
        await conn.execute(f"DROP SCHEMA {shadow_q} CASCADE")


async def _compare(
    conn: asyncpg.Connection[Any], live: str, shadow: str, projectors: Sequence[Projector]
) -> dict[str, tuple[int, int]]:
    changes: dict[str, tuple[int, int]] = {}
    async with conn.transaction():
        for projector in projectors:
            for table in projector.tables:
                a, b = f"{quote(live)}.{quote(table)}", f"{quote(shadow)}.{quote(table)}"
                gone = await conn.fetchval(
                    f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b}) d"
                )
                new = await conn.fetchval(
                    f"SELECT count(*) FROM (SELECT * FROM {b} EXCEPT ALL SELECT * FROM {a}) d"
                )
                changes[table] = (int(gone), int(new))
    return changes
