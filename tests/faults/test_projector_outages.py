"""Projectors ride out PostgreSQL and Redis outages of any length.

A real ``modomo project`` process works through a log while the test SIGKILLs the
PostgreSQL server (every backend with it) or the Redis server, keeps it down past the
runner's longest backoff, and starts it again. Meanwhile the process stays up, says
``degraded`` on its ``/health`` (503, naming what is down), and its lag gauge keeps
moving; afterwards it finishes, and the tables equal a clean run of the same log.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from modomo.demo.services import free_port
from modomo.projections.migrate import migrate
from modomo.projections.registry import PROJECTORS, READ_TABLES
from modomo.settings import Settings
from modomo.streams.connection import connect
from modomo.synthetic.log import synthetic_log
from tests.faults.observe import health, scrape, spawn, value
from tests.faults.outages import PostgresCluster
from tests.faults.servers import RedisServer
from tests.integration.api_support import running_api
from tests.integration.projection_support import caught_up, dump, publish, reference_dump
from tests.integration.support import stop_process, wait_for

pytestmark = pytest.mark.integration

TABLES = (*READ_TABLES, "event_log", "parked_events")
OUTAGE_S = 3.0
"""Added to the time it takes to observe the outage (a few seconds): the runners' pauses
between tries have reached their longest (3 s) by then, and several tries have failed."""


async def _positions(settings: Settings) -> dict[str, str]:
    conn = await asyncpg.connect(settings.database_url, timeout=5)
    try:
        rows = await conn.fetch(
            f'SELECT name, position FROM "{settings.db_schema}".projector_checkpoints '
            f'UNION ALL SELECT name, position FROM "{settings.db_log_schema}".log_checkpoints'
        )
    finally:
        await conn.close()
    return {r["name"]: r["position"] for r in rows}


def _before(a: str, b: str) -> bool:
    return tuple(map(int, a.split("-"))) < tuple(map(int, b.split("-")))


@pytest.fixture
async def own_postgres(db_settings: Settings) -> AsyncIterator[tuple[Settings, PostgresCluster]]:
    cluster = PostgresCluster()
    try:
        settings = msgspec.structs.replace(
            db_settings, database_url=cluster.url, projector_batch=25, metrics_port=free_port()
        )
        conn = await asyncpg.connect(settings.database_url)
        await migrate(conn, settings.db_schema, settings.db_log_schema)
        await conn.close()
        yield settings, cluster
    finally:
        cluster.close()


async def test_postgres_killed_mid_projection_is_ridden_out(
    redis: Redis, own_postgres: tuple[Settings, PostgresCluster], s3_endpoint: str, tmp_path: Path
) -> None:
    settings, cluster = own_postgres
    events = synthetic_log(11, 130)
    last = await publish(redis, settings, events[:-100])
    url = f"http://127.0.0.1:{settings.metrics_port}"
    proc = spawn(settings, "project", log=tmp_path / "project.log")
    # The API rides the same outage.
    async with running_api(settings, s3_endpoint, projectors=False) as api, api.client() as client:
        try:
            assert (await client.get("/datasets")).status_code == 200

            async def working() -> bool:
                return bool((await _positions(settings)).get("scenes"))

            await wait_for(working, within=60, what="the projectors to start")
            # Work is under way, not done, the moment the server dies.
            before = await _positions(settings)
            cluster.kill()
            assert any(_before(p, last) for p in before.values()), before

            async def degraded() -> bool:
                status, body = await health(f"{url}/health")
                return status == 503 and str(body.get("postgres", "")).startswith("down")

            await wait_for(degraded, within=30, what="/health to say PostgreSQL is down")
            _, body = await health(f"{url}/health")
            assert (body["status"], body["redis"]) == ("degraded", "ok")
            status, body = await health(f"{api.url}/health")
            assert (status, body["status"], body["redis"]) == (503, "degraded", "ok")
            refused = await client.get("/datasets")
            assert refused.status_code == 503
            assert "PostgreSQL is unreachable" in refused.text

            # The lag gauge keeps moving while nothing can be applied.
            lag = {"projector": "scenes"}
            stalled = value(await scrape(f"{url}/metrics"), "modomo_projector_lag_events", **lag)
            assert stalled is not None
            last = await publish(redis, settings, events[-100:])

            async def lag_grew() -> bool:
                now = value(await scrape(f"{url}/metrics"), "modomo_projector_lag_events", **lag)
                return now is not None and now >= stalled + 100

            await wait_for(lag_grew, within=30, what="the lag gauge to count new events")
            await asyncio.sleep(OUTAGE_S)
            assert proc.poll() is None, "the projector process exited during the outage"
            await asyncio.to_thread(cluster.start)

            async def done() -> bool:
                try:
                    return await caught_up(settings, list(PROJECTORS), last)
                except (OSError, asyncpg.PostgresError):
                    return False

            await wait_for(done, within=90, what="the projectors to catch up after the outage")

            async def healthy() -> bool:
                api_ok = (await client.get("/datasets")).status_code == 200
                return api_ok and (await health(f"{url}/health"))[0] == 200

            await wait_for(healthy, within=30, what="the API and /health to recover")
            assert (await health(f"{api.url}/health"))[0] == 200
        finally:
            stop_process(proc)
    assert proc.returncode == 0
    assert await dump(settings, tables=TABLES) == await reference_dump(
        redis, settings, last, TABLES
    )


async def test_redis_killed_mid_projection_is_ridden_out(
    db_settings: Settings, tmp_path: Path
) -> None:
    server = RedisServer(tmp_path / "redis", fsync="always")  # a SIGKILL loses nothing
    server.start()
    settings = msgspec.structs.replace(
        db_settings, redis_url=server.url, projector_batch=25, metrics_port=free_port()
    )
    url = f"http://127.0.0.1:{settings.metrics_port}"
    redis = connect(settings)
    proc = None
    try:
        events = synthetic_log(12, 130)
        last = await publish(redis, settings, events)
        proc = spawn(settings, "project", log=tmp_path / "project.log")

        async def working() -> bool:
            return bool((await _positions(settings)).get("scenes"))

        await wait_for(working, within=60, what="the projectors to start")
        before = await _positions(settings)
        server.kill()
        assert any(_before(p, last) for p in before.values()), before

        async def degraded() -> bool:
            status, body = await health(f"{url}/health")
            return status == 503 and str(body.get("redis", "")).startswith("down")

        await wait_for(degraded, within=30, what="/health to say Redis is down")
        await asyncio.sleep(OUTAGE_S)
        assert proc.poll() is None, "the projector process exited during the outage"
        await asyncio.to_thread(server.start)

        async def done() -> bool:
            return await caught_up(settings, list(PROJECTORS), last)

        await wait_for(done, within=90, what="the projectors to catch up after the outage")
        assert (await health(f"{url}/health"))[0] == 200
    finally:
        if proc is not None:
            stop_process(proc)
        reference: dict[str, Any] = {}
        if proc is not None and proc.returncode == 0:
            reference = await reference_dump(redis, settings, last, TABLES)
        await redis.aclose()
        server.stop()
    assert proc.returncode == 0
    assert await dump(settings, tables=TABLES) == reference
