"""Appending events: the log and each job's stream, in one MULTI/EXEC.

An event that belongs to a job (:func:`~modomo.domain.events.job_of`) is written to
``<prefix>:events`` and to ``<prefix>:jobs:events:<job_id>`` in the same atomic step, so the
two never disagree; scene tasks can ride in the same step, so a job is never recorded but
half enqueued, nor enqueued but not recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from modomo.domain.codec import CODEC, EventCodec
from modomo.domain.events import EventBase, job_of
from modomo.domain.stages import SceneTask
from modomo.streams import raw
from modomo.streams.keys import Keys

_task_encoder = msgspec.json.Encoder()

APPEND_LUA = """
local function append(keys, args)
  local n = tonumber(args[1])
  local out = {}
  for i = 0, n - 1 do
    local payload = args[3 + 2 * i]
    out[#out + 1] = redis.call('XADD', keys[1], '*', 'event', payload)
    local job = tonumber(args[2 + 2 * i])
    if job > 0 then
      out[#out + 1] = redis.call('XADD', keys[2 + job], '*', 'event', payload)
    end
  end
  for i = 2 + 2 * n, #args do
    out[#out + 1] = redis.call('XADD', keys[2], '*', 'task', args[i])
  end
  return out
end
"""
"""A Lua function other scripts embed. keys: the log, the queue, then each job stream
once. args: the number of events, then per event (index of its job stream in keys from 1,
or 0; payload), then task payloads. Returns the new entry ids in the order written."""

_APPEND = APPEND_LUA + "return append(KEYS, ARGV)\n"


@dataclass(slots=True)
class Appended:
    """Entry ids of one append, in the order things were given."""

    log_ids: list[str] = field(default_factory=list)
    """Id in ``<prefix>:events`` of each event."""
    job_ids: list[str | None] = field(default_factory=list)
    """Id in the job's stream of each event (``None`` for events of no job)."""
    task_ids: list[str] = field(default_factory=list)
    """Id in ``<prefix>:jobs:queue`` of each task."""


class Staged:
    """Reads the entry ids of one staged append out of the transaction's replies."""

    __slots__ = ("has_job", "position")

    def __init__(self, position: int, has_job: list[bool]) -> None:
        self.position = position
        self.has_job = has_job

    def read(self, replies: Sequence[Any]) -> Appended:
        return self.parse(replies[self.position])

    def parse(self, ids: Sequence[bytes]) -> Appended:
        out = Appended()
        it = iter(ids)
        for has_job in self.has_job:
            out.log_ids.append(next(it).decode())
            out.job_ids.append(next(it).decode() if has_job else None)
        out.task_ids.extend(entry_id.decode() for entry_id in it)
        return out


class EventLog:
    """Appends events (and optionally scene tasks) atomically.

    The writes of one append run as one server-side script: like MULTI/EXEC they are
    atomic (no other client's command runs between them), and one round trip carries any
    number of events, which is what makes batches fast (see ``bench/streams.py``).
    """

    def __init__(self, redis: Redis, keys: Keys, codec: EventCodec = CODEC) -> None:
        self.redis = redis
        self.keys = keys
        self.codec = codec
        self._script = redis.register_script(_APPEND)

    def arguments(
        self, events: Sequence[EventBase], tasks: Sequence[SceneTask] = ()
    ) -> tuple[list[str], list[Any], list[bool]]:
        """KEYS and ARGV of :data:`APPEND_LUA` for ``events`` and ``tasks``, and which
        events have a job stream (for :class:`Staged`)."""
        keys = [self.keys.events, self.keys.queue]
        job_index: dict[str, int] = {}
        args: list[Any] = [len(events)]
        has_job: list[bool] = []
        encode = self.codec.encode
        for event in events:
            job_id = job_of(event)
            if job_id is None:
                args.append(0)
            else:
                index = job_index.get(job_id)
                if index is None:
                    index = job_index[job_id] = len(job_index) + 1
                    keys.append(self.keys.job_events(job_id))
                args.append(index)
            args.append(encode(event))
            has_job.append(job_id is not None)
        args.extend(_task_encoder.encode(task) for task in tasks)
        return keys, args, has_job

    async def stage(
        self,
        pipe: Pipeline,
        events: Sequence[EventBase],
        tasks: Sequence[SceneTask] = (),
    ) -> Staged:
        """Queue the append of ``events`` and ``tasks`` on an open transaction ``pipe``.

        Lets callers put other commands (an XACK, a SADD) in the same MULTI; pass the
        transaction's replies to the returned object's ``read`` to get the entry ids.
        """
        keys, args, has_job = self.arguments(events, tasks)
        position = len(pipe.command_stack)
        await self._script(keys=keys, args=args, client=pipe)
        return Staged(position, has_job)

    async def append(
        self, events: Sequence[EventBase], tasks: Sequence[SceneTask] = ()
    ) -> Appended:
        """Append ``events`` (and enqueue ``tasks``) atomically; all or nothing."""
        if not events and not tasks:
            return Appended()
        keys, args, has_job = self.arguments(events, tasks)
        ids = await raw.evalsha(self.redis, self._script, keys, args)
        return Staged(0, has_job).parse(ids)
