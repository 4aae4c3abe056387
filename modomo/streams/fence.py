"""Fenced writes: only the delivery that owns a scene may append anything for it.

A delivery owns its scene while both hold: its consumer is the entry's owner in the
group's pending list (the claim), and the scene lock ``<prefix>:locks:<scene_id>`` holds
its token. A worker that claims a stalled delivery's entry takes the lock over in the same
script (:mod:`modomo.streams.reclaim`), so losing the claim also changes the lock.

Every write of a delivery goes through its :class:`SceneWriter`:

- stage results (``emit``) run one Lua script that checks ownership and appends, so a
  delivery that lost its scene appends nothing, whatever the handler does;
- the outcome (events, ack, done set, retry bookkeeping) is one MULTI under ``WATCH`` of
  the lock, after the same check: any change of the lock aborts it;
- once the runtime has recorded the delivery's outcome it closes the writer, so a handler
  still running on a thread nobody can stop (a hung model call) cannot write either.

A lock that vanished while the claim is still ours (a Redis restart lost the last second
of writes, or the lock expired while Redis was away) is taken back by the owner's next
write. Writes retry through Redis outages; a write whose reply was lost is not applied
twice: non-final writes leave their id in ``<prefix>:jobs:write:<entry_id>`` and are
skipped when it is there, and a final write acks the entry, after which the ownership
check itself refuses a repeat.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError, WatchError

from modomo.domain.events import EventBase
from modomo.streams import raw
from modomo.streams.keys import GPU_GROUP, Keys
from modomo.streams.log import APPEND_LUA, Appended, EventLog, Staged
from modomo.streams.outage import Link, through_outage

OWNS_LUA = """
local function owns(queue, group, consumer, entry, lock, token, ttl)
  local p = redis.call('XPENDING', queue, group, entry, entry, 1)
  if p[1] == nil or p[1][2] ~= consumer then return false end
  local holder = redis.call('GET', lock)
  if holder == token then return true end
  if holder == false then
    redis.call('SET', lock, token, 'PX', ttl)
    return true
  end
  return false
end
"""
"""A Lua function: does ``consumer`` own ``entry`` and hold (or may retake) the lock?"""

_FENCED_APPEND = (
    OWNS_LUA
    + APPEND_LUA
    + """
if not owns(KEYS[1], ARGV[1], ARGV[2], ARGV[3], KEYS[2], ARGV[4], ARGV[5]) then
  return redis.error_reply('FENCED this delivery no longer owns its scene')
end
if redis.call('GET', KEYS[3]) == ARGV[6] then return 0 end
redis.call('SET', KEYS[3], ARGV[6], 'PX', ARGV[7])
local keys, args = {}, {}
for i = 4, #KEYS do keys[#keys + 1] = KEYS[i] end
for i = 8, #ARGV do args[#args + 1] = ARGV[i] end
return append(keys, args)
"""
)
"""KEYS: queue, lock, write mark, then the append's keys. ARGV: group, consumer, entry,
token, lock TTL ms, write id, write mark TTL ms, then the append's arguments. Returns the
new entry ids, or 0 when this write id had already landed."""

_WATCH_RETRIES = 5
"""A lock that changes between the check and EXEC (it expired and was taken back) is
checked again this many times before the write counts as fenced."""


class Fenced(RuntimeError):
    """This delivery no longer owns its scene: nothing more may be written for it."""


@dataclass(frozen=True, slots=True)
class Ownership:
    """What identifies one delivery's hold on its scene."""

    queue: str
    group: str
    consumer: str
    entry_id: str
    lock_key: str
    token: str
    lock_ttl_ms: int


@dataclass(slots=True)
class SceneWriter:
    """Every write one delivery makes, fenced by its ownership of the scene."""

    redis: Redis
    keys: Keys
    log: EventLog
    owner: Ownership
    link: Link
    retry_cap_ms: int
    mark_ttl_ms: int
    script: AsyncScript
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    """Set the first time a write (or the keep-alive) finds the scene is not ours."""
    holding: bool = False
    """Whether the delivery has taken the scene lock (before, it only keeps its claim)."""
    closed: bool = False

    def close(self) -> None:
        """Refuse every later write (the delivery's outcome is recorded)."""
        self.closed = True

    def _refuse(self, why: str) -> Fenced:
        self.lost.set()
        return Fenced(f"{why} (entry {self.owner.entry_id}, scene lock {self.owner.lock_key})")

    async def append(self, events: Sequence[EventBase]) -> Appended | None:
        """Append ``events`` if this delivery still owns its scene; raises Fenced if not.

        Waits through Redis outages. None when the write had landed before its reply was
        lost (so it is not appended twice).
        """
        if self.closed:
            raise self._refuse("the delivery has ended")
        if not events:
            return Appended()
        keys, args, has_job = self.log.arguments(events)
        o = self.owner
        write_id = secrets.token_hex(8)
        all_keys = [o.queue, o.lock_key, self.keys.write_mark(o.entry_id), *keys]
        all_args = [
            o.group,
            o.consumer,
            o.entry_id,
            o.token,
            o.lock_ttl_ms,
            write_id,
            self.mark_ttl_ms,
            *args,
        ]

        async def once() -> Any:
            if self.closed:
                raise self._refuse("the delivery has ended")
            return await raw.evalsha(self.redis, self.script, all_keys, all_args)

        try:
            reply = await through_outage(once, self.link, self.retry_cap_ms, "append")
        except ResponseError as exc:
            if str(exc).startswith("FENCED"):
                raise self._refuse("the scene was taken over by another delivery") from None
            raise
        if reply == 0:
            return None
        return Staged(0, has_job).parse(reply)

    async def transact(
        self, build: Callable[[Pipeline], Awaitable[None]], *, final: bool
    ) -> list[Any] | None:
        """Run ``build``'s commands in one MULTI if this delivery still owns its scene.

        ``final`` writes ack the entry; others record the write's id so that a repeat
        after a lost reply is skipped (then None is returned). Raises Fenced when the
        scene is not ours, including for a final write repeated after it had landed.
        """
        if self.closed:
            raise self._refuse("the delivery has ended")
        write_id = secrets.token_hex(8)
        tries = 0

        async def once() -> list[Any] | None:
            nonlocal tries
            tries += 1
            for _ in range(_WATCH_RETRIES):
                try:
                    return await self._transact_once(build, write_id, final, tries > 1)
                except WatchError:
                    continue
            raise self._refuse("the scene lock kept changing under the write")

        return await through_outage(once, self.link, self.retry_cap_ms, "transaction")

    async def _transact_once(
        self,
        build: Callable[[Pipeline], Awaitable[None]],
        write_id: str,
        final: bool,
        repeat: bool,
    ) -> list[Any] | None:
        o = self.owner
        mark = self.keys.write_mark(o.entry_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            await pipe.watch(o.lock_key)
            if repeat and not final and await pipe.get(mark) == write_id.encode():
                return None
            holder = await pipe.get(o.lock_key)
            pending = await pipe.xpending_range(
                o.queue, o.group, min=o.entry_id, max=o.entry_id, count=1
            )
            owner = pending[0]["consumer"] if pending else None
            if isinstance(owner, bytes):
                owner = owner.decode()
            if owner != o.consumer:
                raise self._refuse("the entry is no longer this consumer's")
            if holder is not None and holder != o.token.encode():
                raise self._refuse("another delivery holds the scene lock")
            pipe.multi()  # type: ignore[no-untyped-call]
            if holder is None:
                pipe.set(o.lock_key, o.token, px=o.lock_ttl_ms)
            if not final:
                pipe.set(mark, write_id, px=self.mark_ttl_ms)
            await build(pipe)
            replies: list[Any] = await pipe.execute()
            return replies


class Fences:
    """Makes the :class:`SceneWriter` of each delivery of one worker."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        link: Link,
        *,
        retry_cap_ms: int,
        mark_ttl_ms: int,
        group: str = GPU_GROUP,
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.link = link
        self.group = group
        self.retry_cap_ms = retry_cap_ms
        self.mark_ttl_ms = mark_ttl_ms
        self.log = EventLog(redis, keys)
        self._script = redis.register_script(_FENCED_APPEND)

    def writer(
        self, consumer: str, entry_id: str, scene_id: str, token: str, lock_ttl_ms: int
    ) -> SceneWriter:
        owner = Ownership(
            queue=self.keys.queue,
            group=self.group,
            consumer=consumer,
            entry_id=entry_id,
            lock_key=self.keys.lock(scene_id),
            token=token,
            lock_ttl_ms=lock_ttl_ms,
        )
        return SceneWriter(
            redis=self.redis,
            keys=self.keys,
            log=self.log,
            owner=owner,
            link=self.link,
            retry_cap_ms=self.retry_cap_ms,
            mark_ttl_ms=self.mark_ttl_ms,
            script=self._script,
        )
