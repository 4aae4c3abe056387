"""The asyncio Redis client every Modomo process uses."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from modomo.settings import Settings


def connect(settings: Settings, **options: Any) -> Redis:
    """A client for ``settings.redis_url``: password, database and TLS (``rediss://``)
    come from the URL. Replies stay bytes; callers decode what they read.
    """
    return Redis.from_url(
        settings.redis_url,
        decode_responses=False,
        health_check_interval=30,
        socket_keepalive=True,
        **options,
    )
