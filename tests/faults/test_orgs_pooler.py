"""Organisation-scoped reads through a real pgbouncer in ``pool_mode = transaction`` (what
Supabase's port 6543 is): many clients of two organisations, a non-owner role and the org
filter stripped out, sharing two server connections. Every answer is its own
organisation's: neither the role nor the org setting outlives the transaction that set it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from modomo.api.scope import OrgScope
from modomo.domain.events import JobCreated
from modomo.pg import search_path
from modomo.projections.migrate import migrate
from modomo.read import datasets, jobs
from modomo.settings import Settings
from tests.faults.outages import Pgbouncer, PostgresCluster
from tests.integration.org_support import Unfiltered, grant_reader
from tests.integration.projection_support import project, publish
from tests.integration.test_orgs_rls import Org

pytestmark = pytest.mark.integration


@pytest.fixture
async def pooled(db_settings: Settings) -> AsyncIterator[tuple[Settings, Settings]]:
    """(settings through the pooler, the same settings straight to the server)."""
    cluster = PostgresCluster()
    bouncer = Pgbouncer(cluster.port, pool_size=2)
    try:
        direct = msgspec.structs.replace(db_settings, database_url=cluster.url)
        through = msgspec.structs.replace(
            direct, database_url=bouncer.url, db_statement_cache_size=0
        )
        yield through, direct
    finally:
        bouncer.close()
        cluster.close()


async def test_scoped_reads_through_a_transaction_pooler_see_only_their_org(
    redis: Redis, pooled: tuple[Settings, Settings]
) -> None:
    through, direct = pooled
    conn = await asyncpg.connect(direct.database_url)
    try:
        await migrate(conn, direct.db_schema, direct.db_log_schema)
    finally:
        await conn.close()
    orgs = {"acme": Org("acme", 1), "globex": Org("globex", 2)}
    last = await publish(redis, direct, orgs["acme"].events + orgs["globex"].events)
    await project(redis, direct, last)
    role = await grant_reader(direct)
    # No search path at start-up (pgbouncer refuses it): each transaction sets its own.
    pool = await asyncpg.create_pool(
        through.database_url, statement_cache_size=0, min_size=8, max_size=8
    )
    path = search_path(through)
    stripped: list[Unfiltered] = []
    job_ids = {
        name: {e.job_id for e in org.events if isinstance(e, JobCreated)}
        for name, org in orgs.items()
    }

    async def client(org: str, rounds: int) -> None:
        mine = orgs[org]
        scoped = Unfiltered(OrgScope(pool, org, role, path))
        stripped.append(scoped)
        for _ in range(rounds):
            found = await datasets.datasets(scoped, before=None, limit=100)
            assert [d.dataset_id for d in found] == [mine.dataset_id]
            listed = await jobs.jobs(scoped, dataset_id=None, status=None, before=None, limit=100)
            assert {j.job_id for j in listed} == job_ids[org]
            # A client naming no organisation, in between, on the same server connections.
            assert await OrgScope(pool, "", role, path).fetchval("SELECT count(*) FROM scenes") == 0

    try:
        await asyncio.wait_for(
            asyncio.gather(*(client(("acme", "globex")[i % 2], 40) for i in range(8))),
            timeout=120,
        )
    finally:
        await pool.close()
    assert all(s.removed > 0 for s in stripped)
