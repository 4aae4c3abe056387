"""What a scene handler sees and may raise: the delivery, its context, the handler types.

A handler processes one scene and returns the final events; it emits stage results as
they are known through :meth:`TaskContext.emit`, which is fenced: once this delivery has
lost its scene (its claim moved to another worker), every further write raises
:class:`~modomo.streams.fence.Fenced` and nothing more is appended for the scene.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import structlog

from modomo.domain.events import EventBase
from modomo.domain.stages import SceneTask

if TYPE_CHECKING:
    from modomo.streams.fence import SceneWriter
    from modomo.streams.log import Appended

EXIT_RESTART = 3
"""Exit status of a worker that stopped because it cannot go on safely (a model call hung
on a thread that cannot be stopped): its supervisor restarts it."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One delivery of a scene task to this worker."""

    entry_id: str
    task: SceneTask
    deliveries: int
    """How often Redis has delivered this entry, this delivery included."""

    @property
    def attempt(self) -> int:
        """The attempt number, continuing after attempts made before an operator retry."""
        return self.task.prior_attempts + self.deliveries


@dataclass(slots=True)
class TaskContext:
    """What a handler gets: the delivery, a bound logger and a fenced way to emit events."""

    delivery: Delivery
    log: structlog.typing.FilteringBoundLogger
    writer: SceneWriter
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when this delivery no longer owns its scene (another worker claimed it after
    this one stalled); the runtime then cancels the handler."""

    async def emit(self, *events: EventBase) -> Appended | None:
        """Append events now (a stage's result as soon as it is known: partial saves).

        Waits through a Redis outage; raises ``Fenced`` once the scene is no longer this
        delivery's. None when the same write had already landed before a dropped reply.
        """
        return await self.writer.append(events)


Handler = Callable[[TaskContext], Awaitable[Sequence[EventBase]]]
"""Processes one scene; returns the final events, appended atomically with the ack."""

BeforeStart = Callable[[Delivery], Awaitable[Sequence[EventBase]]]
"""Events to append just before a delivery's ``scene_start`` (the GPU worker's ``warming``)."""


class DeadlineExceeded(Exception):
    """The delivery ran past ``task_timeout_s``: a transient failure of this attempt."""


class StopWorker(Exception):
    """Raised by a handler when this process cannot safely take more work (a model call
    hung on a thread nothing can stop). The attempt is recorded as a transient failure,
    the worker reads nothing more and :meth:`Worker.run` ends with ``stopped_for``."""


def consumer_name() -> str:
    """A name unique to this process within the group."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


def lock_token(consumer: str, entry_id: str) -> str:
    """The scene lock's value while ``consumer`` works on queue entry ``entry_id``."""
    return f"{consumer}:{entry_id}"


def describe(exc: BaseException) -> str:
    """One line for an attempt's error."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
