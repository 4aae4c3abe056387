"""`modomo demo` on a machine without Redis or PostgreSQL: embedded servers from pip."""

from __future__ import annotations

from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from modomo.demo.services import databases
from modomo.projections.migrate import migrate
from modomo.settings import Settings

pytestmark = pytest.mark.integration


async def test_embedded_redis_and_postgres_start_serve_and_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MODOMO_REDIS_URL", raising=False)
    monkeypatch.delenv("MODOMO_DATABASE_URL", raising=False)
    nowhere = Settings.from_env(
        {},
        redis_url="redis://127.0.0.1:1/0",
        database_url="postgresql://postgres@127.0.0.1:1/postgres",
    )
    async with databases(nowhere, tmp_path) as settings:
        assert settings.redis_url != nowhere.redis_url
        assert settings.database_url != nowhere.database_url
        client = aioredis.Redis.from_url(settings.redis_url)
        await client.xadd("probe", {"a": "b"})
        assert await client.xlen("probe") == 1
        await client.aclose()
        conn = await asyncpg.connect(settings.database_url)
        applied = await migrate(conn, "modomo", "modomo_log")
        assert applied
        await conn.close()
    aof = [p.name for p in (tmp_path / "redis").iterdir() if p.name.startswith("appendonly")]
    assert aof  # AOF on, as in production
    with pytest.raises((OSError, ConnectionError)):
        await asyncpg.connect(settings.database_url, timeout=2)


async def test_configured_services_are_used_when_they_answer(tmp_path: Path) -> None:
    default = Settings.from_env({})
    async with databases(default, tmp_path) as settings:
        assert settings.redis_url == default.redis_url
        assert settings.database_url == default.database_url
    assert not (tmp_path / "redis").exists()
