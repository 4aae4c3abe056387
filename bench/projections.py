"""Projection throughput against a raw COPY of the same rows, and replay time.

    python bench/projections.py [--events 100000]

Publishes a synthetic log of about ``--events`` scene events to Redis, runs every
projector until caught up (events/s into the read models), then COPYs the rows the
projection produced into empty twins of the tables (rows/s: the baseline), and replays the
log from the archive (blue/green). Prints one table with the ratios. Uses schemas and a key
prefix of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
from scratch import scratch_settings, scratch_space

from modomo.projections import db
from modomo.projections.migrate import create_read_schema, migrate
from modomo.projections.projector import read_checkpoint
from modomo.projections.registry import READ_MODEL_PROJECTORS, READ_TABLES, select
from modomo.projections.replay import replay
from modomo.projections.runner import ProjectorRunner
from modomo.settings import Settings
from modomo.streams.connection import connect
from modomo.streams.keys import Keys
from modomo.streams.log import EventLog
from modomo.synthetic.log import synthetic_log


async def project(settings: Settings, names: Sequence[str], last: str) -> float:
    redis = connect(settings)
    runners = [ProjectorRunner(settings, redis, p, lease_poll_s=0.05) for p in select(list(names))]
    conn = await db.connect(settings)
    started = time.perf_counter()
    tasks = [asyncio.create_task(r.run()) for r in runners]
    try:
        while True:
            positions = [(await read_checkpoint(conn, r.projector))[0] for r in runners]
            if all(p == last for p in positions):
                return time.perf_counter() - started
            await asyncio.sleep(0.02)
    finally:
        for runner in runners:
            runner.stop()
        await asyncio.gather(*tasks)
        await conn.close()
        await redis.aclose()


async def copy_baseline(conn: asyncpg.Connection[Any], settings: Settings) -> tuple[int, float]:
    """COPY every read-model row into empty tables of a scratch schema: (rows, seconds)."""
    scratch = f"{settings.db_schema}_copy"
    await create_read_schema(conn, scratch)
    tables = {
        t: [tuple(r.values()) for r in await conn.fetch(f"SELECT * FROM {t}")] for t in READ_TABLES
    }
    rows = sum(len(v) for v in tables.values())
    started = time.perf_counter()
    async with conn.transaction():
        for table, records in tables.items():
            await conn.copy_records_to_table(table, schema_name=scratch, records=records)
    return rows, time.perf_counter() - started


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    settings = scratch_settings(database_url=args.database_url, block_ms=50)
    events = synthetic_log(1, max(1, args.events // 14))
    async with scratch_space(settings) as (redis, admin):
        assert admin is not None
        await migrate(admin, settings.db_schema, settings.db_log_schema)
        log = EventLog(redis, Keys(settings.redis_prefix))
        last = "0-0"
        for start in range(0, len(events), 1000):
            last = (await log.append(events[start : start + 1000])).log_ids[-1]
        n = len(events)

        seconds = await project(settings, ["scenes"], last)
        scenes_rate = n / seconds
        seconds = await project(settings, ["archive", "datasets", "jobs", "reviews"], last)
        others_rate = n / seconds
        conn = await db.connect(settings)
        try:
            copied, copy_s = await copy_baseline(conn, settings)
        finally:
            await conn.close()
        copy_rate = copied / copy_s
        started = time.perf_counter()
        result = await replay(settings, select(list(READ_MODEL_PROJECTORS)))
        replay_s = time.perf_counter() - started
        assert result.events == n

        rows = [
            (
                "raw COPY of the resulting rows (baseline)",
                copy_rate,
                f"{copied:,} rows in {copy_s:.2f} s",
            ),
            ("scenes projector alone", scenes_rate, f"{n:,} events"),
            ("archive + datasets + jobs + reviews together", others_rate, f"{n:,} events"),
            (
                "replay of all read models from event_log, with swap",
                n / replay_s,
                f"{replay_s:.1f} s",
            ),
        ]

    baseline = rows[0][1]
    width = max(len(r[0]) for r in rows)
    print(
        f"\n{len(events):,} events from {len(events) // 14:,} scenes (about 14 events per scene)\n"
    )
    print(f"{'path':<{width}}  {'per second':>11}  {'vs COPY':>8}  note")
    for label, rate, note in rows:
        print(f"{label:<{width}}  {rate:>11,.0f}  {rate / baseline:>7.1%}  {note}")


if __name__ == "__main__":
    asyncio.run(main())
