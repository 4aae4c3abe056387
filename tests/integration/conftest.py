"""Fixtures for tests against the real Redis on this machine (no fakes).

Each test gets its own key prefix instead of a flushed database, so tests can run beside
each other and beside a developer's data; the prefix's keys are deleted afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from redis.asyncio import Redis

from modomo.settings import Settings
from modomo.streams.connection import connect

REDIS_URL = os.environ.get("MODOMO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def fast_settings(prefix: str, **overrides: object) -> Settings:
    """Settings with retry timings scaled down from seconds to fractions of a second."""
    values: dict[str, object] = {
        "redis_url": REDIS_URL,
        "redis_prefix": prefix,
        "retry_backoff_ms": (400, 800),
        "heartbeat_ms": 100,
        "reclaim_interval_ms": 50,
        "block_ms": 100,
        "lock_ttl_ms": 3000,
        "projector_lease_ms": 2000,
        "shutdown_grace_s": 10.0,
        "log_format": "json",
    }
    values.update(overrides)
    return Settings.from_env({}, **values)


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def settings(prefix: str) -> Settings:
    return fast_settings(prefix)


@pytest.fixture
async def redis(prefix: str, settings: Settings) -> AsyncIterator[Redis]:
    client = connect(settings)
    await client.ping()
    yield client
    keys = [key async for key in client.scan_iter(match=f"{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


DATABASE_URL = os.environ.get(
    "MODOMO_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
async def db_settings(prefix: str) -> AsyncIterator[Settings]:
    """Settings pointing at fresh, migrated schemas of their own in the test database."""
    settings = fast_settings(
        prefix,
        database_url=DATABASE_URL,
        db_schema=f"{prefix}_rm",
        db_log_schema=f"{prefix}_log",
        projector_batch=200,
    )
    import asyncpg

    from modomo.projections.migrate import migrate

    conn = await asyncpg.connect(DATABASE_URL)
    try:
        await migrate(conn, settings.db_schema, settings.db_log_schema)
        yield settings
    finally:
        schemas = await conn.fetch(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", f"{prefix}%"
        )
        for row in schemas:
            await conn.execute(f'DROP SCHEMA "{row["nspname"]}" CASCADE')
        await conn.close()
        # Tests that never asked for the redis fixture still wrote under this prefix.
        client = connect(settings)
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from tests.integration.s3 import start_seaweedfs

    yield from start_seaweedfs()
