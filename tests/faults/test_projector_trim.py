"""The Redis log trims itself below every projector's checkpoint, keeping a margin, and a
projector that starts later still reads everything (from the archive)."""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from modomo.projections.migrate import migrate
from modomo.projections.monitor import Monitor
from modomo.projections.registry import PROJECTORS, select
from modomo.projections.runner import ProjectorRunner
from modomo.settings import Settings
from modomo.streams.keys import Keys
from modomo.synthetic.log import synthetic_log
from tests.integration.projection_support import caught_up, dump, project, publish
from tests.integration.support import wait_for

pytestmark = pytest.mark.integration

MARGIN = 7


async def test_the_projector_process_trims_the_log_behind_every_reader(
    redis: Redis, db_settings: Settings
) -> None:
    settings = msgspec.structs.replace(
        db_settings, projector_trim_interval_s=0.2, projector_trim_margin=MARGIN
    )
    stream = Keys(settings.redis_prefix).events
    events = synthetic_log(14, 12)
    first = await publish(redis, settings, events[:50])
    # Every projector but reviews: the log must stay whole while one has not started.
    runners = [
        ProjectorRunner(settings, redis, p, lease_poll_s=0.05)
        for p in select([n for n in PROJECTORS if n != "reviews"])
    ]
    monitor = Monitor(settings, redis, runners, interval_s=0.1)
    tasks = [asyncio.create_task(r.run()) for r in runners]
    tasks.append(asyncio.create_task(monitor.run()))
    try:
        await wait_for(
            lambda: caught_up(settings, ["archive", "scenes"], first), what="the first part"
        )
        await asyncio.sleep(0.5)  # several trim rounds
        assert await redis.xlen(stream) == 50  # reviews has no checkpoint yet

        runners.append(ProjectorRunner(settings, redis, select(["reviews"])[0]))
        tasks.append(asyncio.create_task(runners[-1].run()))
        last = await publish(redis, settings, events[50:])

        async def trimmed() -> bool:
            done = await caught_up(settings, list(PROJECTORS), last)
            return done and await redis.xlen(stream) == MARGIN + 1

        await wait_for(trimmed, what="the log to be trimmed to the margin")
        info = await redis.xinfo_stream(stream)
        assert info["entries-added"] == len(events)
    finally:
        monitor.stop()
        for runner in runners:
            runner.stop()
        await asyncio.gather(*tasks)
    # A projector starting now from nothing reads the trimmed part from event_log.
    fresh = msgspec.structs.replace(settings, db_schema=f"{settings.db_schema}_late")
    conn = await asyncpg.connect(settings.database_url)
    await migrate(conn, fresh.db_schema, fresh.db_log_schema)
    await conn.close()
    await project(redis, fresh, last, names=["scenes"])
    tables = ("scenes", "scene_styles", "objects", "object_materials")
    assert await dump(fresh, tables=tables) == await dump(settings, tables=tables)
