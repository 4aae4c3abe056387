"""The asyncio Redis client every Modomo process uses, and how a loop rides out an outage.

Every client has a socket timeout (longer than any blocking read), a connect timeout and a
health check of idle pooled connections, so a dead or partitioned server surfaces as an
error within seconds instead of a read that never returns. redis-py then raises
``ConnectionError`` (or ``TimeoutError``) on every call until the server answers again;
:mod:`modomo.streams.outage` is how a loop waits for it to come back.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import BusyLoadingError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from modomo.settings import Settings

REDIS_DOWN: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
)
"""What a call raises while Redis is unreachable, restarting or still loading its AOF
(``BusyLoadingError`` is a redis-py ``ConnectionError``, named for the reader). Not the
built-in ``TimeoutError``: that is what a deadline raises."""


def connect(settings: Settings, **options: Any) -> Redis:
    """A client for ``settings.redis_url``: password, database and TLS (``rediss://``)
    come from the URL. Replies stay bytes; callers decode what they read.
    """
    # A bounded pool that waits for a free connection: a burst of requests (a thousand SSE
    # clients reading history at once) must not become a thousand Redis connections.
    values: dict[str, Any] = {
        "max_connections": settings.redis_max_connections,
        "timeout": 30,
        "decode_responses": False,
        "socket_timeout": settings.redis_socket_timeout_s,
        "socket_connect_timeout": settings.redis_connect_timeout_s,
        "health_check_interval": settings.redis_health_check_s,
        "socket_keepalive": True,
    }
    values.update(options)
    pool = BlockingConnectionPool.from_url(settings.redis_url, **values)
    return Redis(connection_pool=pool)
