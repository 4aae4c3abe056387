"""Keep-alive: a live delivery refreshes its claim and its scene lock every heartbeat.

The refresh only touches an entry this consumer still owns (it never steals one back)
and a lock this delivery holds; a lock that vanished while the claim is still ours (a
Redis restart lost it, or it expired while Redis was away) is taken back. When the entry
or the lock belongs to someone else, the delivery has lost its scene: ``lost`` is set and
the runtime cancels the handler. While Redis is unreachable the loop keeps trying; it
never sets ``lost`` on an outage alone.
"""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio import Redis

from modomo.streams.connection import REDIS_DOWN
from modomo.streams.fence import SceneWriter
from modomo.streams.outage import Link

_KEEP_ALIVE = """
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if p[1] == nil or p[1][2] ~= ARGV[2] then return 0 end
if ARGV[6] == '1' then
  local holder = redis.call('GET', KEYS[2])
  if holder == ARGV[4] then
    redis.call('PEXPIRE', KEYS[2], ARGV[5])
  elseif holder == false then
    redis.call('SET', KEYS[2], ARGV[4], 'PX', ARGV[5])
  else
    return 0
  end
end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
"""
"""KEYS: queue, lock. ARGV: group, consumer, entry, token, lock TTL ms, '1' once the
delivery holds the lock ('0' while it waits for it: then only the claim is kept). Returns
1 while the delivery owns its scene, 0 once it does not."""


class KeepAlive:
    """The heartbeat of each running delivery of one worker."""

    def __init__(self, redis: Redis, link: Link, heartbeat_ms: int) -> None:
        self.link = link
        self.interval_s = heartbeat_ms / 1000
        self._script = redis.register_script(_KEEP_ALIVE)

    async def refresh(self, writer: SceneWriter) -> bool:
        """One refresh; False when the delivery no longer owns its scene."""
        o = writer.owner
        owned = await self._script(
            keys=[o.queue, o.lock_key],
            args=[
                o.group,
                o.consumer,
                o.entry_id,
                o.token,
                o.lock_ttl_ms,
                "1" if writer.holding else "0",
            ],
        )
        return bool(owned)

    async def run(self, writer: SceneWriter, finished: asyncio.Event) -> None:
        """Refresh every heartbeat until ``finished``; sets ``writer.lost`` on losing."""
        while not finished.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), self.interval_s)
                return
            try:
                owned = await self.refresh(writer)
            except REDIS_DOWN as exc:
                self.link.down(exc, "keep-alive")
                continue
            self.link.up()
            if not owned and not finished.is_set():
                writer.lost.set()
                return
