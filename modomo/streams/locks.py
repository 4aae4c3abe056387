"""Scene locks: ``<prefix>:locks:<scene_id>`` owned by one worker at a time.

Taken with ``SET NX PX`` (or found already held by the taker's token: a reclaim hands the
lock over with the claim), released only by the owner (compare-and-delete in Lua), so a
worker whose lock expired can never free a lock that another worker has taken since. The
keep-alive (:mod:`modomo.streams.keepalive`) refreshes it.
"""

from __future__ import annotations

from redis.asyncio import Redis

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_ACQUIRE = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""


class Locks:
    """Owner-checked locks with a TTL."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._release = redis.register_script(_RELEASE)
        self._acquire = redis.register_script(_ACQUIRE)

    async def acquire(self, key: str, token: str, ttl_ms: int) -> bool:
        """Take the lock if it is free or ``token`` holds it already; True when it does."""
        return bool(await self._acquire(keys=[key], args=[token, ttl_ms]))

    async def release(self, key: str, token: str) -> bool:
        """Free the lock if ``token`` still owns it; False when someone else does."""
        return bool(await self._release(keys=[key], args=[token]))

    async def owner(self, key: str) -> str | None:
        """The token holding the lock now, if any."""
        value = await self.redis.get(key)
        return value.decode() if isinstance(value, bytes) else value
