"""Helpers for projector tests: publish a log, run projectors until caught up, dump tables."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
from redis.asyncio import Redis

from modomo.domain.events import EventBase
from modomo.projections import db
from modomo.projections.projector import read_checkpoint
from modomo.projections.registry import PROJECTORS, READ_TABLES, select
from modomo.projections.runner import ProjectorRunner
from modomo.settings import Settings
from modomo.streams.keys import Keys
from modomo.streams.log import EventLog


async def publish(
    redis: Redis, settings: Settings, events: Sequence[EventBase], chunk: int = 500
) -> str:
    """Append ``events`` in order; returns the last log entry id."""
    log = EventLog(redis, Keys(settings.redis_prefix))
    last = "0-0"
    for start in range(0, len(events), chunk):
        appended = await log.append(events[start : start + chunk])
        last = appended.log_ids[-1]
    return last


async def caught_up(settings: Settings, names: Sequence[str], last: str) -> bool:
    conn = await db.connect(settings)
    try:
        for projector in select(list(names)):
            position, _ = await read_checkpoint(conn, projector)
            if position != last:
                return False
        return True
    finally:
        await conn.close()


async def project(
    redis: Redis,
    settings: Settings,
    last: str,
    names: Sequence[str] = tuple(PROJECTORS),
    within: float = 60,
) -> None:
    """Run the projectors in this process until each has applied the log up to ``last``."""
    runners = [ProjectorRunner(settings, redis, p, lease_poll_s=0.1) for p in select(list(names))]
    tasks = [asyncio.create_task(r.run()) for r in runners]
    deadline = time.monotonic() + within
    try:
        while not await caught_up(settings, names, last):
            for task in tasks:
                if task.done():
                    task.result()
            if time.monotonic() > deadline:
                raise AssertionError(f"projectors not caught up with {last} in {within}s")
            await asyncio.sleep(0.05)
    finally:
        for runner in runners:
            runner.stop()
        await asyncio.gather(*tasks)


def _norm(value: Any) -> Any:
    if isinstance(value, float):
        return None if math.isnan(value) else float(f"{value:.5g}")
    if isinstance(value, list):
        return tuple(_norm(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _norm(v)) for k, v in value.items()))
    return value


async def dump(
    settings: Settings, schema: str | None = None, tables: Sequence[str] = READ_TABLES
) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the read-model tables, normalised and sorted, for comparisons."""
    conn: asyncpg.Connection[Any] = await db.connect(settings, schema=schema)
    try:
        out = {}
        for table in tables:
            rows = await conn.fetch(f"SELECT * FROM {table}")
            out[table] = sorted((tuple(_norm(v) for v in r.values()) for r in rows), key=repr)
        return out
    finally:
        await conn.close()


async def reference_dump(
    redis: Redis, settings: Settings, last: str, tables: Sequence[str]
) -> dict[str, list[tuple[Any, ...]]]:
    """``tables`` after a clean run of the same log, in this process, in schemas of their
    own beside ``settings``' (the end state every fault test is compared against)."""
    import msgspec

    from modomo.projections.migrate import migrate

    ref = msgspec.structs.replace(
        settings,
        db_schema=f"{settings.db_schema}_ref",
        db_log_schema=f"{settings.db_log_schema}_ref",
    )
    conn = await asyncpg.connect(settings.database_url)
    try:
        await migrate(conn, ref.db_schema, ref.db_log_schema)
    finally:
        await conn.close()
    await project(redis, ref, last)
    return await dump(ref, tables=tables)
