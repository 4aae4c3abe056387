"""Projector processes that are killed, doubled, or lose their database mid-stream."""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from modomo.projections.migrate import migrate
from modomo.projections.registry import READ_TABLES, select
from modomo.projections.runner import ProjectorRunner
from modomo.settings import Settings
from modomo.synthetic.log import synthetic_log
from tests.faults.outages import PostgresCluster
from tests.integration.projection_support import caught_up, dump, publish, reference_dump
from tests.integration.support import ROOT, settings_env, stop_process, wait_for

pytestmark = pytest.mark.integration

TABLES_AND_LOG = (*READ_TABLES, "event_log", "parked_events")


def _spawn(settings: Settings, *names: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "modomo.cli", "project", *names],
        cwd=ROOT,
        env=settings_env(settings),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _reference(redis: Redis, settings: Settings, last: str) -> dict[str, Any]:
    return await reference_dump(redis, settings, last, TABLES_AND_LOG)


async def test_projector_killed_at_random_points_ends_with_identical_tables(
    redis: Redis, db_settings: Settings
) -> None:
    settings = db_settings
    events = synthetic_log(21, 720)
    assert len(events) >= 10_000
    last = await publish(redis, settings, events)
    rng = random.Random(7)
    kills = 0
    while kills < 5:
        proc = _spawn(settings)
        await asyncio.sleep(rng.uniform(0.5, 1.0))
        if proc.poll() is not None:
            raise AssertionError(f"projector exited early with {proc.returncode}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills += 1
        if await caught_up(settings, ["archive", "scenes", "jobs"], last):
            break
    final = _spawn(settings)
    try:

        async def leased() -> bool:
            return await _lease_holders(settings, "scenes") == {final.pid}

        await wait_for(leased, what="the last process to take the lease")

        async def done() -> bool:
            return await caught_up(
                settings, ["archive", "datasets", "jobs", "scenes", "reviews"], last
            )

        await wait_for(done, within=120, what="the restarted projectors to catch up")
    finally:
        stop_process(final)
    assert final.returncode == 0  # SIGTERM: a clean stop
    assert kills >= 2
    assert await dump(settings, tables=TABLES_AND_LOG) == await _reference(redis, settings, last)


async def _lease_holders(settings: Settings, name: str) -> set[int]:
    """Pids of the processes holding an unexpired lease on projector ``name``."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(
            f'SELECT holder FROM "{settings.db_log_schema}".projector_leases '
            "WHERE name = $1 AND expires_at > now()",
            f"{settings.db_schema}:{name}",
        )
    finally:
        await conn.close()
    return {int(r["holder"].split(":")[1]) for r in rows}


async def test_second_projector_process_stands_by_and_takes_over(
    redis: Redis, db_settings: Settings
) -> None:
    settings = db_settings
    events = synthetic_log(4, 150)
    first_half = await publish(redis, settings, events[: len(events) // 2])
    procs = [_spawn(settings, "scenes"), _spawn(settings, "scenes")]
    try:

        async def one_holder() -> bool:
            return len(await _lease_holders(settings, "scenes")) == 1

        await wait_for(one_holder, what="one process to take the lease")
        [holder] = await _lease_holders(settings, "scenes")
        active = next(p for p in procs if holder == p.pid)
        standby = next(p for p in procs if p is not active)

        async def half_done() -> bool:
            return await caught_up(settings, ["scenes"], first_half)

        await wait_for(half_done, what="the active process to project the first half")
        assert await _lease_holders(settings, "scenes") == {active.pid}

        active.send_signal(signal.SIGKILL)
        active.wait(10)
        took_over = time.monotonic()

        async def standby_holds() -> bool:
            return await _lease_holders(settings, "scenes") == {standby.pid}

        await wait_for(standby_holds, what="the standby to take the lease")
        # The dead holder's lease runs out, then the standby's next poll (1 s) takes it.
        assert time.monotonic() - took_over < settings.projector_lease_ms / 1000 + 4
        last = await publish(redis, settings, events[len(events) // 2 :])

        async def all_done() -> bool:
            return await caught_up(settings, ["scenes"], last)

        await wait_for(all_done, what="the standby to project the rest")
    finally:
        for proc in procs:
            stop_process(proc)
    tables = ("scenes", "scene_styles", "objects", "object_materials")
    ref = await _reference(redis, settings, last)
    assert await dump(settings, tables=tables) == {t: ref[t] for t in tables}


@pytest.fixture
async def restartable(db_settings: Settings) -> AsyncIterator[tuple[Settings, PostgresCluster]]:
    """A throwaway PostgreSQL server of this test's own, migrated, which it may restart."""
    cluster = PostgresCluster()
    try:
        settings = msgspec.structs.replace(db_settings, database_url=cluster.url)
        conn = await asyncpg.connect(settings.database_url)
        await migrate(conn, settings.db_schema, settings.db_log_schema)
        await conn.close()
        yield settings, cluster
    finally:
        cluster.close()


async def test_postgres_restart_mid_projection_loses_and_duplicates_nothing(
    redis: Redis, restartable: tuple[Settings, PostgresCluster]
) -> None:
    settings, cluster = restartable
    events = synthetic_log(9, 300)
    last = await publish(redis, settings, events)
    runners = [ProjectorRunner(settings, redis, p, lease_poll_s=0.1) for p in select(None)]
    tasks = [asyncio.create_task(r.run()) for r in runners]
    try:

        async def started() -> bool:
            conn = await asyncpg.connect(settings.database_url)
            try:
                count = await conn.fetchval(
                    f'SELECT count(*) FROM "{settings.db_log_schema}".event_log'
                )
            finally:
                await conn.close()
            return bool(count)

        await wait_for(started, what="projection to begin")
        await asyncio.to_thread(cluster.restart)

        async def done() -> bool:
            try:
                return await caught_up(
                    settings, ["archive", "datasets", "jobs", "scenes", "reviews"], last
                )
            except (OSError, asyncpg.PostgresError):
                return False

        await wait_for(done, within=60, what="projectors to reconnect and catch up")
    finally:
        for runner in runners:
            runner.stop()
        await asyncio.gather(*tasks)
    assert await dump(settings, tables=TABLES_AND_LOG) == await _reference(redis, settings, last)
