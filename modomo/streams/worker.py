"""The scene task worker: a small loop over the ``gpu-workers`` group.

At-least-once delivery, exactly-once effect:

- Each slot reads one entry at a time (no prefetch), or claims one whose backoff has run
  out. A live task refreshes its claim and its scene lock every ``heartbeat_ms``, so no
  other worker takes it over while it is alive.
- Before working, the slot takes ``<prefix>:locks:<scene_id>`` and checks the job's done
  set: a scene whose results are already in the log is only acked, never redone.
- Success appends the handler's final events, marks the scene done and acks, in one
  MULTI. Failure records the attempt's error and a ``scene_failed`` event; the entry stays
  pending until its backoff passes. After the last attempt the entry goes to the dead
  stream with every attempt's error, in the same MULTI that acks it.
- A worker that dies leaves its entry pending with no error recorded; whoever claims it
  records "stopped responding" for that attempt. Delivery counts come from Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from modomo.domain.events import (
    AttemptError,
    EventBase,
    SceneCompleted,
    SceneDeadLettered,
    SceneFailed,
    SceneStarted,
)
from modomo.domain.stages import SceneTask
from modomo.settings import Settings
from modomo.streams import metrics
from modomo.streams.completion import JobCompletion, Outcome
from modomo.streams.keys import Keys
from modomo.streams.locks import Locks
from modomo.streams.log import Appended, EventLog
from modomo.streams.queue import (
    EXHAUSTED,
    Entry,
    Pending,
    TaskDecodeError,
    TaskQueue,
    decode_task,
)

_KEEP_ALIVE = """
local owned = 0
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if p[1] ~= nil and p[1][2] == ARGV[2] then
  redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
  owned = 1
end
if redis.call('GET', KEYS[2]) == ARGV[4] then
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
return owned
"""
"""Refresh the claim on an entry only while this consumer owns it (never steal it back),
and the scene lock only while this token holds it."""


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
    """What a handler gets: the delivery, a bound logger and a way to emit events."""

    delivery: Delivery
    log: structlog.typing.FilteringBoundLogger
    events: EventLog
    lost: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when another worker has claimed this entry (this one stalled too long)."""

    async def emit(self, *events: EventBase) -> Appended:
        """Append events now (a stage's result as soon as it is known: partial saves)."""
        return await self.events.append(events)


Handler = Callable[[TaskContext], Awaitable[Sequence[EventBase]]]
"""Processes one scene; returns the final events, appended atomically with the ack."""

BeforeStart = Callable[[Delivery], Awaitable[Sequence[EventBase]]]
"""Events to append just before a delivery's ``scene_start`` (the GPU worker's ``warming``)."""


def consumer_name() -> str:
    """A name unique to this process within the group."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


def describe(exc: BaseException) -> str:
    """One line for an attempt's error."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class Worker:
    """Runs ``handler`` for scene tasks in ``concurrency`` slots until stopped."""

    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        handler: Handler,
        *,
        name: str | None = None,
        concurrency: int = 1,
        before_start: BeforeStart | None = None,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.handler = handler
        self.name = name or consumer_name()
        self.concurrency = concurrency
        self.before_start = before_start
        self.keys = Keys(settings.redis_prefix)
        self.queue = TaskQueue(redis, self.keys)
        self.events = EventLog(redis, self.keys)
        self.locks = Locks(redis)
        self.completion = JobCompletion(redis, self.keys, settings.attempts_ttl_s)
        self._keep_alive = redis.register_script(_KEEP_ALIVE)
        self._stopping = asyncio.Event()
        self._next_reclaim = 0.0
        self._next_stats = 0.0
        self._log = structlog.get_logger("modomo.worker").bind(worker=self.name)

    def stop(self) -> None:
        """Finish what is running, read nothing new."""
        if not self._stopping.is_set():
            self._log.info("worker_stopping")
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def run(self) -> None:
        """Consume until :meth:`stop`; then wait up to the grace period for running tasks."""
        await self.queue.ensure_group()
        self._log.info("worker_started", concurrency=self.concurrency)
        slots = [asyncio.create_task(self._slot()) for _ in range(self.concurrency)]
        stopped = asyncio.create_task(self._stopping.wait())
        try:
            done, _ = await asyncio.wait([*slots, stopped], return_when=asyncio.FIRST_EXCEPTION)
            if stopped in done:
                _, late = await asyncio.wait(slots, timeout=self.settings.shutdown_grace_s)
                for task in late:
                    # Still pending in Redis: it is reclaimed by another worker later.
                    self._log.warning("task_abandoned_at_shutdown")
                    task.cancel()
            for task in slots:
                if task.done() and not task.cancelled() and task.exception():
                    raise task.exception()  # type: ignore[misc]
        finally:
            stopped.cancel()
            for task in slots:
                task.cancel()
            # Bounded: a cancellation swallowed inside a Redis call must not hang shutdown.
            await asyncio.wait([*slots, stopped], timeout=5)
        self._log.info("worker_stopped")

    async def run_until_signal(self) -> None:
        """:meth:`run`, stopping cleanly on SIGTERM or SIGINT."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        try:
            await self.run()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    async def _slot(self) -> None:
        while not self.stopping:
            picked = await self._next()
            if picked is not None:
                await self._process(*picked)

    async def _next(self) -> tuple[Entry, int] | None:
        claimed = await self._reclaim()
        if claimed is not None:
            return claimed
        if self.stopping:
            return None
        entries = await self.queue.read_new(self.name, 1, self.settings.block_ms)
        return (entries[0], 1) if entries else None

    async def _reclaim(self) -> tuple[Entry, int] | None:
        """Claim one pending entry whose backoff has passed; dead-letter exhausted ones."""
        now = time.monotonic()
        if now >= self._next_stats:
            self._next_stats = now + 5.0
            metrics.observe_queue(await self.queue.stats())
        if now < self._next_reclaim:
            return None
        self._next_reclaim = now + self.settings.reclaim_interval_ms / 1000
        shortest = min(self.settings.retry_backoff_ms)
        for pending in await self.queue.pending(shortest):
            if self.stopping:
                return None
            need = self.settings.backoff_ms(pending.deliveries)
            if pending.idle_ms < need:
                continue
            exhausted = pending.deliveries >= self.settings.max_attempts
            entry = await self.queue.claim(self.name, pending.id, need, justid=exhausted)
            if entry is None:
                continue  # another worker claimed it first
            metrics.TASKS_RECLAIMED.inc()
            try:
                task = decode_task(entry) if not exhausted else None
            except TaskDecodeError as exc:
                await self._dead_undecodable(entry, str(exc))
                continue
            if exhausted:
                await self._dead_after_abandon(pending)
                continue
            assert task is not None
            await self._note_abandoned(pending, task)
            return entry, pending.deliveries + 1
        return None

    async def _note_abandoned(self, pending: Pending, task: SceneTask) -> None:
        """Record "stopped responding" for a delivery that ended with no error recorded."""
        errors = await self.queue.errors(pending.id)
        if len(errors) >= pending.deliveries:
            return
        attempt = task.prior_attempts + pending.deliveries
        error = AttemptError(
            attempt=attempt,
            error=f"worker {pending.consumer} stopped responding (idle {pending.idle_ms} ms)",
            consumer=pending.consumer,
        )
        async with self.redis.pipeline(transaction=True) as pipe:
            self.queue.stage_error(pipe, pending.id, error, self.settings.attempts_ttl_s)
            await self.events.stage(pipe, [_failed(task, attempt, error.error, will_retry=True)])
            await pipe.execute()
        self._log.warning(
            "task_abandoned",
            entry_id=pending.id,
            error=error.error,
            job_id=task.job_id,
            scene_id=task.scene_id,
            attempt=attempt,
        )

    async def _dead_after_abandon(self, pending: Pending) -> None:
        """The last delivery ended without a word (its worker died): dead-letter it."""
        rows = await self.redis.xrange(self.keys.queue, pending.id, pending.id)
        entry = Entry(pending.id, dict(rows[0][1] or {}) if rows else {})  # type: ignore[arg-type]
        try:
            task = decode_task(entry)
        except TaskDecodeError as exc:
            await self._dead_undecodable(entry, str(exc))
            return
        errors = await self.queue.errors(pending.id)
        if len(errors) < pending.deliveries:
            errors.append(
                AttemptError(
                    attempt=task.prior_attempts + pending.deliveries,
                    error=f"worker {pending.consumer} stopped responding "
                    f"(idle {pending.idle_ms} ms)",
                    consumer=pending.consumer,
                )
            )
        await self._dead_letter(entry, task, errors)

    async def _dead_letter(self, entry: Entry, task: SceneTask, errors: list[AttemptError]) -> None:
        last = errors[-1]
        events = [
            _failed(task, last.attempt, last.error, will_retry=False),
            SceneDeadLettered(
                job_id=task.job_id,
                scene_id=task.scene_id,
                attempt=last.attempt,
                errors=tuple(errors),
            ),
        ]
        async with self.redis.pipeline(transaction=True) as pipe:
            await self.queue.stage_dead(
                pipe, entry, reason=EXHAUSTED, errors=errors, task=task, events=events
            )
            await self.completion.stage_end(pipe, task.job_id, task.scene_id, "failed")
            await pipe.execute()
        metrics.TASKS_DEAD.labels(reason=EXHAUSTED).inc()
        self._log.error(
            "task_dead",
            entry_id=entry.id,
            job_id=task.job_id,
            scene_id=task.scene_id,
            attempts=len(errors),
            error=last.error,
        )

    async def _dead_undecodable(self, entry: Entry, reason: str) -> None:
        await self.queue.dead_letter_undecodable(entry, reason)
        metrics.TASKS_DEAD.labels(reason="undecodable").inc()
        self._log.error("task_undecodable", entry_id=entry.id, error=reason)

    async def _process(self, entry: Entry, deliveries: int) -> None:
        try:
            task = decode_task(entry)
        except TaskDecodeError as exc:
            await self._dead_undecodable(entry, str(exc))
            return
        delivery = Delivery(entry.id, task, deliveries)
        log = self._log.bind(
            job_id=task.job_id, scene_id=task.scene_id, attempt=delivery.attempt, entry_id=entry.id
        )
        ctx = TaskContext(delivery=delivery, log=log, events=self.events)
        lock_key = self.keys.lock(task.scene_id)
        token = f"{self.name}:{entry.id}"
        finished = asyncio.Event()
        keep_alive = asyncio.create_task(
            self._keep_alive_loop(entry.id, lock_key, token, ctx, finished)
        )
        metrics.TASKS_IN_FLIGHT.inc()
        try:
            if not await self._lock(lock_key, token, log):
                return  # stopping while another worker held the scene: stays pending
            if await self.redis.sismember(self.keys.done(task.job_id), task.scene_id):
                async with self.redis.pipeline(transaction=True) as pipe:
                    self.queue.stage_ack(pipe, entry.id)
                    await pipe.execute()
                log.info("task_already_done")
                return
            opening = list(await self.before_start(delivery)) if self.before_start else []
            opening.append(
                SceneStarted(
                    job_id=task.job_id,
                    scene_id=task.scene_id,
                    attempt=delivery.attempt,
                    worker=self.name,
                )
            )
            await self.events.append(opening)
            metrics.TASKS_STARTED.inc()
            started = time.perf_counter()
            try:
                final = await self.handler(ctx)
            except Exception as exc:
                await self._fail(ctx, entry, exc)
            else:
                elapsed = time.perf_counter() - started
                await self._succeed(ctx, final, elapsed)
                metrics.TASK_SECONDS.observe(elapsed)
        finally:
            metrics.TASKS_IN_FLIGHT.dec()
            # Told to stop rather than cancelled: redis-py can swallow a cancellation that
            # lands mid-command, which left the loop running and this await hanging.
            finished.set()
            try:
                await asyncio.wait_for(keep_alive, self.settings.heartbeat_ms * 3 / 1000)
            except (TimeoutError, Exception) as exc:
                log.warning("keep_alive_stopped_badly", error=repr(exc))
            await self.locks.release(lock_key, token)

    async def _lock(self, key: str, token: str, log: structlog.typing.FilteringBoundLogger) -> bool:
        """Take the scene lock, waiting while another worker holds it."""
        waited = False
        while not await self.locks.acquire(key, token, self.settings.lock_ttl_ms):
            if not waited:
                log.info("scene_locked_elsewhere", owner=await self.locks.owner(key))
                waited = True
            if self.stopping:
                return False
            await asyncio.sleep(min(0.2, self.settings.heartbeat_ms / 1000))
        return True

    async def _keep_alive_loop(
        self,
        entry_id: str,
        lock_key: str,
        token: str,
        ctx: TaskContext,
        finished: asyncio.Event,
    ) -> None:
        interval = self.settings.heartbeat_ms / 1000
        while not finished.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), interval)
                return
            owned = await self._refresh(self.redis, entry_id, lock_key, token)
            if not owned and not ctx.lost.is_set() and not finished.is_set():
                ctx.lost.set()
                ctx.log.warning("task_no_longer_owned")

    def _refresh(
        self, client: Redis | Pipeline, entry_id: str, lock_key: str, token: str
    ) -> Awaitable[int]:
        return self._keep_alive(
            keys=[self.keys.queue, lock_key],
            args=[self.queue.group, self.name, entry_id, token, self.settings.lock_ttl_ms],
            client=client,
        )

    async def _succeed(
        self, ctx: TaskContext, final: Sequence[EventBase], elapsed_s: float
    ) -> None:
        task = ctx.delivery.task
        done_key = self.keys.done(task.job_id)
        outcome: Outcome = next((e.status for e in final if isinstance(e, SceneCompleted)), "ok")
        async with self.redis.pipeline(transaction=True) as pipe:
            await self.events.stage(pipe, final)
            pipe.sadd(done_key, task.scene_id)
            pipe.expire(done_key, self.settings.attempts_ttl_s)
            self.queue.stage_ack(pipe, ctx.delivery.entry_id)
            await self.completion.stage_end(pipe, task.job_id, task.scene_id, outcome)
            await pipe.execute()
        metrics.TASKS_SUCCEEDED.inc()
        ctx.log.info("task_done", duration_ms=round(elapsed_s * 1000, 1))

    async def _fail(self, ctx: TaskContext, entry: Entry, exc: Exception) -> None:
        delivery, task = ctx.delivery, ctx.delivery.task
        error = AttemptError(attempt=delivery.attempt, error=describe(exc), consumer=self.name)
        will_retry = delivery.deliveries < self.settings.max_attempts
        metrics.TASKS_FAILED.labels(will_retry=str(will_retry).lower()).inc()
        ctx.log.warning("task_failed", error=error.error, will_retry=will_retry, exc_info=exc)
        if not will_retry:
            errors = [*await self.queue.errors(delivery.entry_id), error]
            await self._dead_letter(entry, task, errors)
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            self.queue.stage_error(pipe, delivery.entry_id, error, self.settings.attempts_ttl_s)
            await self.events.stage(
                pipe, [_failed(task, delivery.attempt, error.error, will_retry)]
            )
            # Restart the entry's idle clock so the backoff counts from this failure.
            await self._refresh(pipe, delivery.entry_id, self.keys.lock(task.scene_id), "")
            await pipe.execute()


def _failed(task: SceneTask, attempt: int, error: str, will_retry: bool) -> SceneFailed:
    return SceneFailed(
        job_id=task.job_id,
        scene_id=task.scene_id,
        attempt=attempt,
        error=error,
        will_retry=will_retry,
    )
