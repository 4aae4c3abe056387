"""How a delivery ends: done, failed and retried later, or dead.

- **Done**: the final events, the scene in the job's done set, the ack and the scene's
  end (which may append ``job_done``), in one fenced MULTI.
- **Failed, transient, attempts left**: the attempt's error, ``scene_failed`` with
  ``will_retry`` and a reset of the entry's idle clock (the backoff counts from now), in
  one fenced MULTI; the entry stays pending until a worker claims it after the backoff.
- **Dead**: an input error at once (``reason=input``), or a transient one on the last
  attempt (``attempts_exhausted``): the dead entry with every attempt's error, the ack,
  ``scene_failed`` (final) and ``scene_dead``, and the scene's end, in one MULTI.
"""

from __future__ import annotations

from collections.abc import Sequence

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from modomo.domain.events import (
    AttemptError,
    EventBase,
    SceneCompleted,
    SceneDeadLettered,
    SceneFailed,
)
from modomo.domain.failures import INPUT, FailureClass
from modomo.domain.stages import SceneTask
from modomo.settings import Settings
from modomo.streams import metrics
from modomo.streams.completion import JobCompletion, Outcome
from modomo.streams.delivery import TaskContext
from modomo.streams.fence import Fenced, SceneWriter
from modomo.streams.keys import Keys
from modomo.streams.log import EventLog
from modomo.streams.outage import Link, through_outage
from modomo.streams.queue import EXHAUSTED, Entry, TaskQueue

log = structlog.get_logger("modomo.worker")


def failed_event(
    task: SceneTask, attempt: int, error: str, *, will_retry: bool, failure: FailureClass
) -> SceneFailed:
    return SceneFailed(
        job_id=task.job_id,
        scene_id=task.scene_id,
        attempt=attempt,
        error=error,
        will_retry=will_retry,
        failure=failure,
    )


class Outcomes:
    """Records the end of deliveries for one worker."""

    def __init__(self, redis: Redis, keys: Keys, settings: Settings, link: Link) -> None:
        self.redis = redis
        self.keys = keys
        self.settings = settings
        self.link = link
        self.queue = TaskQueue(redis, keys)
        self.events = EventLog(redis, keys)
        self.completion = JobCompletion(
            redis, keys, settings.attempts_ttl_s, settings.job_retention_s
        )

    async def done(self, ctx: TaskContext, final: Sequence[EventBase]) -> None:
        """The handler returned: append its final events, mark the scene done, ack."""
        task = ctx.delivery.task
        status: Outcome = next((e.status for e in final if isinstance(e, SceneCompleted)), "ok")

        async def build(pipe: Pipeline) -> None:
            done_key = self.keys.done(task.job_id)
            await self.events.stage(pipe, final)
            pipe.sadd(done_key, task.scene_id)
            pipe.expire(done_key, self.settings.attempts_ttl_s)
            self.queue.stage_ack(pipe, ctx.delivery.entry_id)
            await self.completion.stage_end(pipe, task.job_id, task.scene_id, status)

        try:
            await ctx.writer.transact(build, final=True)
        except Fenced:
            # A commit whose reply was lost to an outage had landed: the repeat is refused
            # because the entry is acked. Anything else really is a lost scene.
            landed = await through_outage(
                lambda: self.redis.sismember(self.keys.done(task.job_id), task.scene_id),
                self.link,
                self.settings.redis_retry_max_ms,
                "done check",
            )
            if not landed:
                raise
            ctx.log.info("task_done_before_the_reply_was_lost")
        metrics.TASKS_SUCCEEDED.inc()

    async def failed(self, ctx: TaskContext, entry: Entry, error: AttemptError) -> bool:
        """The attempt failed with ``error``: retry later, or dead. True when dead."""
        delivery = ctx.delivery
        will_retry = error.failure != INPUT and delivery.deliveries < self.settings.max_attempts
        metrics.TASKS_FAILED.labels(will_retry=str(will_retry).lower()).inc()
        ctx.log.warning(
            "task_failed", error=error.error, failure=error.failure, will_retry=will_retry
        )
        if not will_retry:
            errors = [*await self._errors(delivery.entry_id), error]
            reason = INPUT if error.failure == INPUT else EXHAUSTED

            async def dead(pipe: Pipeline) -> None:
                await self.stage_dead(pipe, entry, delivery.task, errors, reason)

            await ctx.writer.transact(dead, final=True)
            self._dead_logged(delivery.entry_id, delivery.task, errors, reason)
            return True

        async def retry(pipe: Pipeline) -> None:
            task = delivery.task
            self.queue.stage_error(pipe, delivery.entry_id, error, self.settings.attempts_ttl_s)
            await self.events.stage(
                pipe,
                [
                    failed_event(
                        task, delivery.attempt, error.error, will_retry=True, failure=error.failure
                    )
                ],
            )
            # Restart the entry's idle clock so the backoff counts from this failure.
            self.queue.stage_touch(pipe, ctx.writer.owner.consumer, delivery.entry_id)

        await ctx.writer.transact(retry, final=False)
        return False

    async def abandoned(self, writer: SceneWriter, task: SceneTask, error: AttemptError) -> None:
        """Record "stopped responding" for the delivery before this one (claimed now)."""

        async def build(pipe: Pipeline) -> None:
            self.queue.stage_error(pipe, writer.owner.entry_id, error, self.settings.attempts_ttl_s)
            await self.events.stage(
                pipe,
                [
                    failed_event(
                        task, error.attempt, error.error, will_retry=True, failure="transient"
                    )
                ],
            )

        await writer.transact(build, final=False)

    async def dead_unowned(self, entry: Entry, task: SceneTask, errors: list[AttemptError]) -> None:
        """Dead-letter an entry claimed only to end it (its last delivery's worker died)."""

        async def once() -> None:
            async with self.redis.pipeline(transaction=True) as pipe:
                await self.stage_dead(pipe, entry, task, errors, EXHAUSTED)
                await pipe.execute()

        await through_outage(once, self.link, self.settings.redis_retry_max_ms, "dead letter")
        self._dead_logged(entry.id, task, errors, EXHAUSTED)

    async def stage_dead(
        self,
        pipe: Pipeline,
        entry: Entry,
        task: SceneTask,
        errors: list[AttemptError],
        reason: str,
    ) -> None:
        """Queue the dead entry, its ack, the final events and the scene's end on ``pipe``."""
        last = errors[-1]
        events = [
            failed_event(task, last.attempt, last.error, will_retry=False, failure=last.failure),
            SceneDeadLettered(
                job_id=task.job_id,
                scene_id=task.scene_id,
                attempt=last.attempt,
                errors=tuple(errors),
                reason=reason,
            ),
        ]
        await self.queue.stage_dead(
            pipe, entry, reason=reason, errors=errors, task=task, events=events
        )
        await self.completion.stage_end(pipe, task.job_id, task.scene_id, "failed")

    async def _errors(self, entry_id: str) -> list[AttemptError]:
        return await through_outage(
            lambda: self.queue.errors(entry_id),
            self.link,
            self.settings.redis_retry_max_ms,
            "read attempts",
        )

    def _dead_logged(
        self, entry_id: str, task: SceneTask, errors: list[AttemptError], reason: str
    ) -> None:
        metrics.TASKS_DEAD.labels(reason=reason).inc()
        log.error(
            "task_dead",
            entry_id=entry_id,
            job_id=task.job_id,
            scene_id=task.scene_id,
            reason=reason,
            attempts=len(errors),
            error=errors[-1].error,
        )
