"""A benchmark's own corner of Redis and PostgreSQL: a fresh key prefix and schemas, all
removed afterwards, so a run never touches real data nor leaves any behind."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from redis.asyncio import Redis

from modomo.logs import configure_logging
from modomo.settings import Settings
from modomo.streams.connection import connect


def scratch_settings(**overrides: Any) -> Settings:
    """Settings with a fresh ``bench<hex>`` prefix and schemas; quiet logs."""
    configure_logging(Settings.from_env(log_level="warning"))
    name = f"bench{uuid.uuid4().hex[:8]}"
    values: dict[str, Any] = {
        "redis_prefix": name,
        "db_schema": f"{name}_rm",
        "db_log_schema": f"{name}_log",
        "log_level": "warning",
    }
    return Settings.from_env(**(values | overrides))


@asynccontextmanager
async def scratch_space(
    settings: Settings, database: bool = True
) -> AsyncIterator[tuple[Redis, asyncpg.Connection[Any] | None]]:
    """Redis (and an admin PostgreSQL connection); both cleaned of the run's data after."""
    redis = connect(settings)
    admin = await asyncpg.connect(settings.database_url) if database else None
    try:
        yield redis, admin
    finally:
        await clean(settings, redis, admin)


async def clean(settings: Settings, redis: Redis, admin: asyncpg.Connection[Any] | None) -> None:
    """Drop the run's schemas and keys, and close both connections."""
    if admin is not None:
        for schema in (settings.db_schema, settings.db_log_schema):
            rows = await admin.fetch(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE $1", f"{schema}%"
            )
            for row in rows:
                await admin.execute(f'DROP SCHEMA "{row["nspname"]}" CASCADE')
        await admin.close()
    found = [key async for key in redis.scan_iter(match=f"{settings.redis_prefix}:*")]
    if found:
        await redis.delete(*found)
    await redis.aclose()
