"""Scene locks: ``<prefix>:locks:<scene_id>`` owned by one worker at a time.

Taken with ``SET NX PX``; refreshed and released only by the owner (compare-and-expire,
compare-and-delete in Lua), so a worker whose lock expired can never free a lock that
another worker has taken since.
"""

from __future__ import annotations

from redis.asyncio import Redis

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class Locks:
    """Owner-checked locks with a TTL."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._release = redis.register_script(_RELEASE)
        self._refresh = redis.register_script(_REFRESH)

    async def acquire(self, key: str, token: str, ttl_ms: int) -> bool:
        """Take the lock if it is free; True when ``token`` now owns it."""
        return bool(await self.redis.set(key, token, nx=True, px=ttl_ms))

    async def refresh(self, key: str, token: str, ttl_ms: int) -> bool:
        """Extend the lock's TTL if ``token`` still owns it."""
        return bool(await self._refresh(keys=[key], args=[token, ttl_ms]))

    async def release(self, key: str, token: str) -> bool:
        """Free the lock if ``token`` still owns it; False when someone else does."""
        return bool(await self._release(keys=[key], args=[token]))

    async def owner(self, key: str) -> str | None:
        """The token holding the lock now, if any."""
        value = await self.redis.get(key)
        return value.decode() if isinstance(value, bytes) else value
