"""The asyncio Redis client every Modomo process uses."""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

from modomo.settings import Settings


def connect(settings: Settings, **options: Any) -> Redis:
    """A client for ``settings.redis_url``: password, database and TLS (``rediss://``)
    come from the URL. Replies stay bytes; callers decode what they read.
    """
    # A bounded pool that waits for a free connection: a burst of requests (a thousand SSE
    # clients reading history at once) must not become a thousand Redis connections.
    pool = BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_max_connections,
        timeout=30,
        decode_responses=False,
        health_check_interval=30,
        socket_keepalive=True,
        **options,
    )
    return Redis(connection_pool=pool)
