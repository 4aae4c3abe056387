"""Appending events: the log and each job's stream, in one MULTI/EXEC.

An event that belongs to a job (:func:`~modomo.domain.events.job_of`) is written to
``<prefix>:events`` and to ``<prefix>:jobs:events:<job_id>`` in the same transaction, so the
two never disagree; scene tasks can ride in the same transaction, so a job is never
recorded but half enqueued, nor enqueued but not recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from modomo.domain.codec import CODEC, EventCodec
from modomo.domain.events import EventBase, job_of
from modomo.domain.stages import SceneTask
from modomo.streams.keys import EVENT_FIELD, TASK_FIELD, Keys

_task_encoder = msgspec.json.Encoder()


@dataclass(slots=True)
class Appended:
    """Entry ids of one append, in the order things were given."""

    log_ids: list[str] = field(default_factory=list)
    """Id in ``<prefix>:events`` of each event."""
    job_ids: list[str | None] = field(default_factory=list)
    """Id in the job's stream of each event (``None`` for events of no job)."""
    task_ids: list[str] = field(default_factory=list)
    """Id in ``<prefix>:jobs:queue`` of each task."""


class _Staged:
    """Which reply of the transaction belongs to which event or task."""

    __slots__ = ("first", "has_job", "tasks")

    def __init__(self, first: int, has_job: list[bool], tasks: int) -> None:
        self.first = first
        self.has_job = has_job
        self.tasks = tasks

    def read(self, replies: Sequence[object]) -> Appended:
        out = Appended()
        position = self.first
        for has_job in self.has_job:
            out.log_ids.append(_text(replies[position]))
            position += 1
            if has_job:
                out.job_ids.append(_text(replies[position]))
                position += 1
            else:
                out.job_ids.append(None)
        for _ in range(self.tasks):
            out.task_ids.append(_text(replies[position]))
            position += 1
        return out


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class EventLog:
    """Appends events (and optionally scene tasks) atomically."""

    def __init__(self, redis: Redis, keys: Keys, codec: EventCodec = CODEC) -> None:
        self.redis = redis
        self.keys = keys
        self.codec = codec

    def stage(
        self,
        pipe: Pipeline,
        events: Sequence[EventBase],
        tasks: Sequence[SceneTask] = (),
    ) -> _Staged:
        """Queue the XADDs of ``events`` and ``tasks`` on an open transaction ``pipe``.

        Lets callers put other commands (an XACK, a SADD) in the same MULTI; pass the
        transaction's replies to the returned object's ``read`` to get the entry ids.
        """
        first = len(pipe.command_stack)
        has_job: list[bool] = []
        for event in events:
            payload = {EVENT_FIELD: self.codec.encode(event)}
            pipe.xadd(self.keys.events, payload)  # type: ignore[arg-type]
            job_id = job_of(event)
            if job_id is not None:
                pipe.xadd(self.keys.job_events(job_id), payload)  # type: ignore[arg-type]
            has_job.append(job_id is not None)
        for task in tasks:
            pipe.xadd(self.keys.queue, {TASK_FIELD: _task_encoder.encode(task)})
        return _Staged(first, has_job, len(tasks))

    async def append(
        self, events: Sequence[EventBase], tasks: Sequence[SceneTask] = ()
    ) -> Appended:
        """Append ``events`` (and enqueue ``tasks``) in one MULTI/EXEC; all or nothing."""
        if not events and not tasks:
            return Appended()
        async with self.redis.pipeline(transaction=True) as pipe:
            staged = self.stage(pipe, events, tasks)
            replies = await pipe.execute()
        return staged.read(replies)
