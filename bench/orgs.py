"""What scoping a read to the caller's organisation costs: the same read-layer query by
primary key, run (a) on the pool as before organisations (no transaction, the org filter
stripped), (b) through ``OrgScope`` (a transaction naming the org, filter in the query), and
(c) through ``OrgScope`` with a non-owner role (row-level security as well). Ratios against
(a), in one run, on one connection at a time (latency, not throughput).

    PYTHONPATH=$PWD .venv/bin/python -m bench.orgs [--reads 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from modomo.api.scope import OrgScope
from modomo.pg import pool as db_pool
from modomo.projections.migrate import migrate
from modomo.read import datasets
from modomo.read.scenes import SCENE_QUERY
from modomo.settings import Settings

ROLE = "modomo_bench_reader"


class Bare:
    """The pool as the API used it before organisations: the filter stripped."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool

    async def fetchrow(self, query: str, *args: Any) -> Any:
        return await self.pool.fetchrow(_bare(query), *args)

    async def fetchval(self, query: str, *args: Any) -> Any:
        return await self.pool.fetchval(_bare(query), *args)

    async def fetch(self, query: str, *args: Any) -> list[Any]:
        found: list[Any] = await self.pool.fetch(_bare(query), *args)
        return found


def _bare(query: str) -> str:
    import re

    return re.sub(r"(?:\b\w+\.)?org_id = current_setting\('modomo\.org', true\)", "true", query)


async def _time(read: Callable[[], Awaitable[Any]], n: int) -> list[float]:
    for _ in range(20):
        await read()
    took = []
    for _ in range(n):
        start = time.perf_counter()
        await read()
        took.append((time.perf_counter() - start) * 1e6)
    return took


async def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=3000)
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/test")
    args = parser.parse_args(argv)
    tag = uuid.uuid4().hex[:8]
    settings = Settings.from_env(
        {}, database_url=args.database_url, db_schema=f"b{tag}_rm", db_log_schema=f"b{tag}_log"
    )
    admin = await asyncpg.connect(args.database_url)
    try:
        await migrate(admin, settings.db_schema, settings.db_log_schema)
        with contextlib.suppress(asyncpg.DuplicateObjectError, asyncpg.UniqueViolationError):
            await admin.execute(f"CREATE ROLE {ROLE} NOLOGIN NOBYPASSRLS")
        await admin.execute(f'GRANT USAGE ON SCHEMA "{settings.db_schema}" TO {ROLE}')
        await admin.execute(
            f'GRANT SELECT ON ALL TABLES IN SCHEMA "{settings.db_schema}" TO {ROLE}'
        )
        now = datetime.now(UTC)
        await admin.execute(
            f'INSERT INTO "{settings.db_schema}".datasets (dataset_id, name, created_at, org_id) '
            "VALUES ('d1', 'rooms', $1, 'acme')",
            now,
        )
        await admin.execute(
            f'INSERT INTO "{settings.db_schema}".scenes (scene_id, dataset_id, r2_key_original, '
            "registered_at, updated_at, org_id) VALUES ('s1', 'd1', 'k', $1, $1, 'acme')",
            now,
        )
        pool = await db_pool(settings, min_size=1, max_size=1)
        try:
            ways: dict[str, Any] = {
                "pool, no org (before)": Bare(pool),
                "OrgScope: transaction + filter": OrgScope(pool, "acme"),
                "OrgScope + role: filter + RLS": OrgScope(pool, "acme", ROLE),
            }
            reads: dict[str, Callable[[Any], Awaitable[Any]]] = {
                "dataset by id": lambda c: datasets.dataset(c, "d1"),
                "scene document by id": lambda c: c.fetchval(SCENE_QUERY, "s1"),
            }
            print("| read | path | p50 µs | p95 µs | p50 ratio |")
            print("| --- | --- | ---: | ---: | ---: |")
            for what, read in reads.items():
                took: dict[str, list[float]] = {name: [] for name in ways}
                # Round-robin in slices, so a noisy neighbour hurts every path alike.
                for _ in range(10):
                    for name, conn in ways.items():
                        assert await read(conn) is not None, (what, name)
                        took[name] += await _time(lambda c=conn, r=read: r(c), args.reads // 10)
                base = None
                for name, times in took.items():
                    times.sort()
                    p50, p95 = statistics.median(times), times[int(len(times) * 0.95)]
                    base = base or p50
                    print(f"| {what} | {name} | {p50:.0f} | {p95:.0f} | {p50 / base:.2f}x |")
        finally:
            await pool.close()
    finally:
        for schema in (settings.db_schema, settings.db_log_schema):
            await admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
