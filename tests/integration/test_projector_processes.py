"""Projector processes that are killed, doubled, or lose their database mid-stream."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from modomo.demo.services import free_port
from modomo.projections.migrate import migrate
from modomo.projections.registry import READ_TABLES, select
from modomo.projections.runner import ProjectorRunner
from modomo.settings import Settings
from modomo.synthetic.log import synthetic_log
from tests.integration.projection_support import caught_up, dump, project, publish
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
    """The same log projected cleanly, in this process, into schemas of its own."""
    ref = msgspec.structs.replace(
        settings,
        db_schema=f"{settings.db_schema}_ref",
        db_log_schema=f"{settings.db_log_schema}_ref",
    )
    conn = await asyncpg.connect(settings.database_url)
    await migrate(conn, ref.db_schema, ref.db_log_schema)
    await conn.close()
    await project(redis, ref, last)
    return await dump(ref, tables=TABLES_AND_LOG)


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
            return await _lease_holders(settings, "scenes") == {f"modomo:{final.pid}"}

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


def _application_holding(conn_rows: list[Any]) -> set[str]:
    return {r["application_name"] for r in conn_rows}


async def _lease_holders(settings: Settings, name: str) -> set[str]:
    key = select([name])[0].lease_key(settings.db_schema)
    unsigned = key & 0xFFFFFFFFFFFFFFFF
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1 AND l.objid = $2",
            unsigned >> 32,
            unsigned & 0xFFFFFFFF,
        )
    finally:
        await conn.close()
    return _application_holding(rows)


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
        active = next(p for p in procs if holder == f"modomo:{p.pid}")
        standby = next(p for p in procs if p is not active)

        async def half_done() -> bool:
            return await caught_up(settings, ["scenes"], first_half)

        await wait_for(half_done, what="the active process to project the first half")
        assert await _lease_holders(settings, "scenes") == {f"modomo:{active.pid}"}

        active.send_signal(signal.SIGKILL)
        active.wait(10)
        took_over = time.monotonic()

        async def standby_holds() -> bool:
            return await _lease_holders(settings, "scenes") == {f"modomo:{standby.pid}"}

        await wait_for(standby_holds, what="the standby to take the lease")
        assert time.monotonic() - took_over < 5
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


def _as_postgres(*args: str) -> None:
    subprocess.run(
        ["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=60
    )


@pytest.fixture
def own_postgres() -> Iterator[tuple[str, Path, int]]:
    """A throwaway PostgreSQL server of this test's own, which the test may restart."""
    bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    if not bindir or shutil.which("runuser") is None or os.geteuid() != 0:
        pytest.skip("needs Debian's PostgreSQL binaries and root to run them as postgres")
    folder = Path(tempfile.mkdtemp(prefix="modomo-pg-"))
    shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"
    port = free_port()
    _as_postgres(str(bindir[-1] / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    ctl = str(bindir[-1] / "pg_ctl")
    options = (
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
        "-c synchronous_commit=off -c full_page_writes=off"
    )
    # -l: the server must not hold our output pipe, or waiting for pg_ctl never ends.
    _as_postgres(ctl, "-D", str(data), "-o", options, "-l", str(folder / "log"), "-w", "start")
    try:
        yield ctl, data, port
    finally:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", ctl, "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def restartable(
    own_postgres: tuple[str, Path, int], db_settings: Settings
) -> AsyncIterator[tuple[Settings, str, Path]]:
    ctl, data, port = own_postgres
    settings = msgspec.structs.replace(
        db_settings, database_url=f"postgresql://postgres@127.0.0.1:{port}/postgres"
    )
    conn = await asyncpg.connect(settings.database_url)
    await migrate(conn, settings.db_schema, settings.db_log_schema)
    await conn.close()
    return settings, ctl, data


async def test_postgres_restart_mid_projection_loses_and_duplicates_nothing(
    redis: Redis, restartable: tuple[Settings, str, Path]
) -> None:
    settings, ctl, data = restartable
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
        await asyncio.to_thread(
            _as_postgres,
            ctl,
            "-D",
            str(data),
            "-m",
            "fast",
            "-l",
            str(data.parent / "log"),
            "-w",
            "restart",
        )

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
