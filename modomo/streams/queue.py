"""The scene task queue: group set-up, reading, pending entries, dead-lettering, trimming.

Delivery counts always come from Redis (``times_delivered`` in XPENDING, raised by every
XREADGROUP and XCLAIM), never from a worker's memory, so the attempt cap holds even when
a task kills its worker before any error handler runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from modomo.domain.events import AttemptError, EventBase, utc_now
from modomo.domain.stages import SceneTask
from modomo.streams.keys import GPU_GROUP, TASK_FIELD, Keys
from modomo.streams.log import EventLog

_task_decoder = msgspec.json.Decoder(SceneTask)
_errors_encoder = msgspec.json.Encoder()
_error_decoder = msgspec.json.Decoder(AttemptError)
_errors_decoder = msgspec.json.Decoder(list[AttemptError])

UNDECODABLE = "undecodable"
EXHAUSTED = "attempts_exhausted"
"""Dead-entry reasons beside ``input`` (:data:`modomo.domain.failures.INPUT`)."""


@dataclass(frozen=True, slots=True)
class Entry:
    """A raw queue entry as read from Redis."""

    id: str
    fields: dict[bytes, bytes]


@dataclass(frozen=True, slots=True)
class Pending:
    """One line of XPENDING's extended form."""

    id: str
    consumer: str
    idle_ms: int
    deliveries: int


class TaskDecodeError(ValueError):
    """A queue entry that is not a scene task; the message says why."""


def decode_task(entry: Entry) -> SceneTask:
    """The scene task in ``entry``; raises TaskDecodeError with the reason."""
    raw = entry.fields.get(TASK_FIELD)
    if raw is None:
        fields = ", ".join(sorted(k.decode(errors="replace") for k in entry.fields)) or "none"
        raise TaskDecodeError(f"entry has no 'task' field (fields: {fields})")
    try:
        return _task_decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise TaskDecodeError(f"not a scene task: {exc}") from None


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entries(reply: Any) -> list[Entry]:
    # XCLAIM answers an entry deleted since it was read with empty fields: keep its id so
    # the caller can ack it, with no fields, so it reads as undecodable.
    return [Entry(_text(entry_id), dict(fields or {})) for entry_id, fields in reply]


class TaskQueue:
    """``<prefix>:jobs:queue`` and its ``gpu-workers`` group, plus the dead stream."""

    def __init__(self, redis: Redis, keys: Keys, group: str = GPU_GROUP) -> None:
        self.redis = redis
        self.keys = keys
        self.group = group
        self.log = EventLog(redis, keys)

    async def ensure_group(self) -> None:
        """Create the stream and the group from its start; an existing group is fine."""
        try:
            await self.redis.xgroup_create(self.keys.queue, self.group, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read_new(self, consumer: str, count: int, block_ms: int) -> list[Entry]:
        """Up to ``count`` never-delivered entries, waiting up to ``block_ms`` for one.

        A group that vanished (a Redis without persistence restarted) is created again.
        """
        try:
            reply = await self.redis.xreadgroup(
                self.group, consumer, {self.keys.queue: ">"}, count=count, block=block_ms
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            await self.ensure_group()
            return []
        if not reply:
            return []
        return _entries(reply[0][1])  # type: ignore[index]

    async def pending(self, min_idle_ms: int, count: int = 100) -> list[Pending]:
        """Delivered but unacked entries idle at least ``min_idle_ms``, oldest first."""
        rows = await self.redis.xpending_range(
            self.keys.queue, self.group, min="-", max="+", count=count, idle=min_idle_ms
        )
        return [
            Pending(
                id=_text(row["message_id"]),
                consumer=_text(row["consumer"]),
                idle_ms=int(row["time_since_delivered"]),
                deliveries=int(row["times_delivered"]),
            )
            for row in rows
        ]

    async def claim(
        self, consumer: str, entry_id: str, min_idle_ms: int, *, justid: bool = False
    ) -> Entry | None:
        """Take ``entry_id`` over if still idle ``min_idle_ms``; None when another won.

        XCLAIM resets the idle time, so of several workers racing for one entry exactly
        one gets it. It raises the entry's delivery count, unless ``justid``: then the
        entry comes back without its fields and the count stays as it was.
        """
        reply = await self.redis.xclaim(
            self.keys.queue, self.group, consumer, min_idle_ms, [entry_id], justid=justid
        )
        if justid:
            return Entry(_text(reply[0]), {}) if reply else None
        entries = _entries(reply)
        return entries[0] if entries else None

    async def errors(self, entry_id: str) -> list[AttemptError]:
        """The recorded error of each failed delivery of ``entry_id``."""
        raw = await self.redis.lrange(self.keys.attempts(entry_id), 0, -1)
        return [_error_decoder.decode(item) for item in raw]

    def stage_error(self, pipe: Pipeline, entry_id: str, error: AttemptError, ttl_s: int) -> None:
        """Queue the recording of one failed delivery on ``pipe``."""
        key = self.keys.attempts(entry_id)
        pipe.rpush(key, _errors_encoder.encode(error))
        pipe.expire(key, ttl_s)

    def stage_ack(self, pipe: Pipeline, entry_id: str) -> None:
        """Queue the ack of ``entry_id`` and the removal of its bookkeeping."""
        pipe.xack(self.keys.queue, self.group, entry_id)
        pipe.delete(self.keys.attempts(entry_id), self.keys.write_mark(entry_id))

    def stage_touch(self, pipe: Pipeline, consumer: str, entry_id: str) -> None:
        """Queue a reset of the entry's idle time (its owner stays ``consumer``); the
        delivery count is not raised."""
        pipe.xclaim(self.keys.queue, self.group, consumer, 0, [entry_id], justid=True)

    async def stage_dead(
        self,
        pipe: Pipeline,
        entry: Entry,
        *,
        reason: str,
        errors: Sequence[AttemptError],
        task: SceneTask | None,
        events: Sequence[EventBase] = (),
    ) -> None:
        """Queue moving ``entry`` to the dead stream, its ack and ``events`` on ``pipe``."""
        last = errors[-1].error if errors else reason
        fields: dict[bytes, bytes | str] = {
            b"source_id": entry.id,
            b"reason": reason,
            b"error": last,
            b"attempts": str(len(errors)),
            b"errors": _errors_encoder.encode(list(errors)),
            b"dead_at": utc_now().isoformat(),
            TASK_FIELD: entry.fields.get(TASK_FIELD, b""),
        }
        if task is not None:
            fields[b"job_id"] = task.job_id
            fields[b"scene_id"] = task.scene_id
        else:
            # Keep whatever the garbage entry held, so an operator can see what it was.
            fields[b"raw"] = _errors_encoder.encode(
                {
                    k.decode(errors="replace"): v.decode(errors="replace")
                    for k, v in entry.fields.items()
                }
            )
        pipe.xadd(self.keys.dead, fields)  # type: ignore[arg-type]
        pipe.hincrby(self.keys.dead_by_reason, reason, 1)
        self.stage_ack(pipe, entry.id)
        if events:
            await self.log.stage(pipe, events)

    async def dead_letter_undecodable(self, entry: Entry, reason: str) -> None:
        """Move an entry that is no scene task to the dead stream, with the reason."""
        async with self.redis.pipeline(transaction=True) as pipe:
            await self.stage_dead(
                pipe,
                entry,
                reason=UNDECODABLE,
                errors=[AttemptError(attempt=0, error=reason)],
                task=None,
            )
            await pipe.execute()

    async def safe_trim_id(self) -> str | None:
        """The lowest entry id still needed by some group (pending or not yet read).

        Entries below it have been delivered to every group and acked by all. None when
        the stream has no group, since then nothing has been read and nothing may go.
        """
        try:
            groups = await self.redis.xinfo_groups(self.keys.queue)
        except ResponseError:
            return None
        if not groups:
            return None
        bounds: list[tuple[int, int]] = []
        for info in groups:
            name = _text(info["name"])
            summary = await self.redis.xpending(self.keys.queue, name)
            if summary["pending"]:
                bounds.append(_parse_id(_text(summary["min"])))
            ms, seq = _parse_id(_text(info["last-delivered-id"]))
            bounds.append((ms, seq + 1))
        ms, seq = min(bounds)
        return f"{ms}-{seq}"

    async def trim(self) -> int:
        """Delete queue entries that every group has read and acked; returns how many."""
        threshold = await self.safe_trim_id()
        if threshold is None:
            return 0
        return int(await self.redis.xtrim(self.keys.queue, minid=threshold, approximate=False))

    async def stats(self) -> QueueStats:
        """Lengths of the queue, its pending list and the dead stream."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xlen(self.keys.queue)
            pipe.xlen(self.keys.dead)
            pipe.xrange(self.keys.dead, count=1)
            pipe.hgetall(self.keys.dead_by_reason)
            length, dead, oldest, reasons = await pipe.execute()
        try:
            summary = await self.redis.xpending(self.keys.queue, self.group)
            pending = int(summary["pending"])
        except ResponseError:
            pending = 0
        oldest_at = (
            datetime.fromisoformat(_text(oldest[0][1][b"dead_at"]))
            if oldest and b"dead_at" in oldest[0][1]
            else None
        )
        return QueueStats(
            length=int(length),
            pending=pending,
            dead=int(dead),
            oldest_dead_at=oldest_at,
            dead_by_reason={_text(k): int(v) for k, v in reasons.items()},
        )


@dataclass(frozen=True, slots=True)
class QueueStats:
    """A snapshot of the queue for metrics and the CLI."""

    length: int
    pending: int
    dead: int
    oldest_dead_at: datetime | None
    dead_by_reason: dict[str, int]


def _parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def decode_errors(raw: bytes) -> list[AttemptError]:
    """The ``errors`` field of a dead entry."""
    return _errors_decoder.decode(raw)
