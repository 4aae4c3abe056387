"""Operating the dead stream: list what died and why, re-enqueue after a fix."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from redis.asyncio import Redis

from modomo.domain.events import AttemptError, SceneRequeued
from modomo.domain.stages import SceneTask
from modomo.streams.completion import JobCompletion
from modomo.streams.keys import TASK_FIELD, Keys
from modomo.streams.log import EventLog
from modomo.streams.queue import decode_errors

_task_decoder = msgspec.json.Decoder(SceneTask)


@dataclass(frozen=True, slots=True)
class DeadTask:
    """One entry of the dead stream, as an operator sees it."""

    id: str
    source_id: str
    reason: str
    error: str
    attempts: int
    errors: list[AttemptError]
    dead_at: datetime | None
    job_id: str | None
    scene_id: str | None
    task: bytes

    def age_s(self, now: datetime | None = None) -> float:
        """Seconds since the task was dead-lettered."""
        if self.dead_at is None:
            return 0.0
        return ((now or datetime.now(UTC)) - self.dead_at).total_seconds()


class DeadRetryError(ValueError):
    """A dead entry that cannot be re-enqueued; the message says why."""


def _field(fields: dict[bytes, bytes], name: bytes) -> str | None:
    value = fields.get(name)
    return value.decode(errors="replace") if value is not None else None


def _parse(entry_id: bytes | str, fields: dict[bytes, bytes]) -> DeadTask:
    dead_at = _field(fields, b"dead_at")
    raw_errors = fields.get(b"errors")
    return DeadTask(
        id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
        source_id=_field(fields, b"source_id") or "",
        reason=_field(fields, b"reason") or "",
        error=_field(fields, b"error") or "",
        attempts=int(_field(fields, b"attempts") or 0),
        errors=decode_errors(raw_errors) if raw_errors else [],
        dead_at=datetime.fromisoformat(dead_at) if dead_at else None,
        job_id=_field(fields, b"job_id"),
        scene_id=_field(fields, b"scene_id"),
        task=fields.get(TASK_FIELD, b""),
    )


class DeadLetters:
    """Reads and re-enqueues entries of ``<prefix>:jobs:dead``."""

    def __init__(self, redis: Redis, keys: Keys, bookkeeping_ttl_s: int = 7 * 24 * 3600) -> None:
        self.redis = redis
        self.keys = keys
        self.log = EventLog(redis, keys)
        self.completion = JobCompletion(redis, keys, bookkeeping_ttl_s)

    async def oldest(self, count: int = 100) -> list[DeadTask]:
        """The oldest ``count`` dead tasks."""
        rows: Any = await self.redis.xrange(self.keys.dead, count=count)
        return [_parse(entry_id, fields) for entry_id, fields in rows]

    async def get(self, entry_id: str) -> DeadTask | None:
        rows: Any = await self.redis.xrange(self.keys.dead, entry_id, entry_id)
        return _parse(rows[0][0], rows[0][1]) if rows else None

    async def retry(self, entry_id: str) -> str:
        """Re-enqueue one dead task; returns its new queue entry id.

        The new task carries the attempts already made, so attempt numbers continue; a
        ``scene_requeued`` event reopens the scene in the job's state. The enqueue, the
        event and the removal from the dead stream happen in one MULTI.
        """
        dead = await self.get(entry_id)
        if dead is None:
            raise DeadRetryError(f"no dead task with id {entry_id}")
        try:
            task = _task_decoder.decode(dead.task)
        except msgspec.DecodeError as exc:
            raise DeadRetryError(
                f"dead task {entry_id} is not a scene task ({exc}); it cannot be retried"
            ) from None
        task = msgspec.structs.replace(task, prior_attempts=task.prior_attempts + dead.attempts)
        event = SceneRequeued(
            job_id=task.job_id, scene_id=task.scene_id, prior_attempts=task.prior_attempts
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            staged = await self.log.stage(pipe, [event], [task])
            pipe.xdel(self.keys.dead, entry_id)
            await self.completion.stage_reopen(pipe, task.job_id, task.scene_id)
            replies = await pipe.execute()
        return staged.read(replies).task_ids[0]

    async def retry_all(self) -> tuple[list[str], list[str]]:
        """Retry every retryable dead task; returns (new queue ids, reasons of skipped)."""
        queued: list[str] = []
        skipped: list[str] = []
        after = "-"
        while rows := await self.redis.xrange(self.keys.dead, min=after, count=200):
            for entry_id, _ in rows:
                text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                after = f"({text}"
                try:
                    queued.append(await self.retry(text))
                except DeadRetryError as exc:
                    skipped.append(str(exc))
        return queued, skipped
