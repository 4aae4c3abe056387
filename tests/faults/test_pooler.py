"""``migrate``, the projectors (with a standby taking over) and ``replay`` through a real
pgbouncer in ``pool_mode = transaction`` with a small server pool, so that clients' transactions
share server connections and nothing held in a session could survive."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from modomo.projections import db
from modomo.projections.registry import PROJECTORS, READ_TABLES
from modomo.settings import Settings
from modomo.synthetic.log import synthetic_log
from tests.faults.observe import spawn
from tests.faults.outages import Pgbouncer, PostgresCluster
from tests.integration.projection_support import caught_up, dump, publish, reference_dump
from tests.integration.support import ROOT, settings_env, stop_process, wait_for

pytestmark = pytest.mark.integration

TABLES = (*READ_TABLES, "event_log", "parked_events")


@pytest.fixture
async def pooled(db_settings: Settings) -> AsyncIterator[tuple[Settings, Settings]]:
    """(settings through the pooler, the same settings straight to the server)."""
    cluster = PostgresCluster()
    bouncer = Pgbouncer(cluster.port, pool_size=2)
    try:
        direct = msgspec.structs.replace(db_settings, database_url=cluster.url)
        yield msgspec.structs.replace(direct, database_url=bouncer.url), direct
    finally:
        bouncer.close()
        cluster.close()


def _modomo(settings: Settings, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "modomo.cli", *args],
        cwd=ROOT,
        env=settings_env(settings),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def _holders(direct: Settings) -> dict[str, int]:
    """Projector name -> pid of the process holding its unexpired lease."""
    conn = await asyncpg.connect(direct.database_url)
    try:
        rows = await conn.fetch(
            f'SELECT name, holder FROM "{direct.db_log_schema}".projector_leases '
            "WHERE expires_at > now()"
        )
    finally:
        await conn.close()
    return {r["name"].split(":", 1)[1]: int(r["holder"].split(":")[1]) for r in rows}


async def test_migrate_project_take_over_and_replay_through_a_transaction_pooler(
    redis: Redis, pooled: tuple[Settings, Settings], tmp_path: Path
) -> None:
    settings, direct = pooled
    # A session setting is what such a pooler cannot carry: it refuses it outright.
    with pytest.raises(asyncpg.PostgresError, match="search_path"):
        await db.connect(settings)

    # Two migrators at once: each file is applied exactly once.
    migrators = [_modomo(settings, "migrate") for _ in range(2)]
    outputs = [await asyncio.to_thread(p.communicate, timeout=120) for p in migrators]
    assert [p.returncode for p in migrators] == [0, 0], outputs
    applied = sum(out.count("applied 0") for out, _ in outputs)
    conn = await asyncpg.connect(direct.database_url)
    recorded = await conn.fetchval(
        f'SELECT count(*) FROM "{direct.db_log_schema}".schema_migrations'
    )
    await conn.close()
    assert applied == recorded >= 5

    events = synthetic_log(13, 80)
    half = await publish(redis, settings, events[: len(events) // 2])
    procs = [spawn(settings, "project", log=tmp_path / f"p{i}.log") for i in range(2)]
    try:

        async def all_leased() -> bool:
            return set(await _holders(direct)) == set(PROJECTORS)

        await wait_for(all_leased, what="every projector to have an active instance")

        async def half_done() -> bool:
            return await caught_up(direct, list(PROJECTORS), half)

        await wait_for(half_done, within=60, what="the first half to be projected")
        holder = (await _holders(direct))["scenes"]
        active = next(p for p in procs if p.pid == holder)
        standby = next(p for p in procs if p.pid != holder)
        active.send_signal(signal.SIGKILL)
        active.wait(10)
        last = await publish(redis, settings, events[len(events) // 2 :])

        async def standby_holds_all() -> bool:
            holders = await _holders(direct)
            return set(holders) == set(PROJECTORS) and set(holders.values()) == {standby.pid}

        await wait_for(standby_holds_all, within=30, what="the standby to take every lease")

        async def all_done() -> bool:
            return await caught_up(direct, list(PROJECTORS), last)

        await wait_for(all_done, within=60, what="the standby to project the rest")
    finally:
        for proc in procs:
            stop_process(proc)
    assert standby.returncode == 0
    assert await _holders(direct) == {}  # a clean stop hands every lease back at once
    projected = await dump(direct, tables=TABLES)
    assert projected == await reference_dump(redis, direct, last, TABLES)

    # The operators' commands work through the pooler too.
    for args in (
        ("replay",),
        ("projections", "status"),
        ("projections", "parked", "list"),
        ("trim",),
    ):
        proc = _modomo(settings, *args)
        out, err = await asyncio.to_thread(proc.communicate, timeout=120)
        assert proc.returncode == 0, (args, out, err)
    assert await dump(direct, tables=TABLES) == projected
