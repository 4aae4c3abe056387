"""The scene task worker: a small loop over the ``gpu-workers`` group.

At-least-once delivery, exactly-once effect:

- Each slot reads one entry at a time (no prefetch), or claims one whose backoff has run
  out (:mod:`~modomo.streams.reclaim`). A live delivery refreshes its claim and its scene
  lock every ``heartbeat_ms`` (:mod:`~modomo.streams.keepalive`).
- Before working, the slot takes ``<prefix>:locks:<scene_id>`` and checks the job's done
  set: a scene whose results are already in the log is only acked, never redone.
- Every write of the delivery is fenced (:mod:`~modomo.streams.fence`): once another
  worker has taken the scene over, nothing more is appended for it.
- The handler runs under ``task_timeout_s``; past it, or on any error, the attempt fails:
  input errors end the scene at once, transient ones are retried after their backoff, the
  last one goes to the dead stream (:mod:`~modomo.streams.outcomes`).
- A Redis outage never ends the worker: every loop waits for Redis with a capped backoff
  and the in-flight delivery keeps its work (:mod:`~modomo.streams.outage`).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import structlog
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from modomo.domain.events import AttemptError, EventBase, SceneStarted
from modomo.domain.failures import TRANSIENT, failure_class
from modomo.settings import Settings
from modomo.streams import metrics
from modomo.streams.connection import REDIS_DOWN
from modomo.streams.delivery import (
    EXIT_RESTART,
    BeforeStart,
    DeadlineExceeded,
    Delivery,
    Handler,
    StopWorker,
    TaskContext,
    consumer_name,
    describe,
    lock_token,
)
from modomo.streams.fence import Fenced, Fences, SceneWriter
from modomo.streams.housekeeping import Housekeeping
from modomo.streams.keepalive import KeepAlive
from modomo.streams.keys import Keys
from modomo.streams.locks import Locks
from modomo.streams.outage import Link, Reconnect, through_outage
from modomo.streams.outcomes import Outcomes
from modomo.streams.queue import Entry, TaskDecodeError, TaskQueue, decode_task
from modomo.streams.reclaim import Claimed, Reclaimer, stopped_responding

T = TypeVar("T")

_CANCEL_WAIT_S = 5.0
"""How long a cancelled handler may take to unwind before the slot moves on."""


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
        link: Link | None = None,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.handler = handler
        self.name = name or consumer_name()
        self.concurrency = concurrency
        self.before_start = before_start
        self.keys = Keys(settings.redis_prefix)
        self._log = structlog.get_logger("modomo.worker").bind(worker=self.name)
        self.link = link or Link(self._log)
        """Whether this worker reaches Redis (for ``/health``)."""
        self.queue = TaskQueue(redis, self.keys)
        self.locks = Locks(redis)
        self.fences = Fences(
            redis,
            self.keys,
            self.link,
            retry_cap_ms=settings.redis_retry_max_ms,
            mark_ttl_ms=settings.attempts_ttl_s * 1000,
        )
        self.outcomes = Outcomes(redis, self.keys, settings, self.link)
        self.keep_alive = KeepAlive(redis, self.link, settings.heartbeat_ms)
        self._running: set[str] = set()
        self.reclaimer = Reclaimer(
            redis, self.keys, settings, self.name, self.outcomes, self._running.__contains__
        )
        self.housekeeping = Housekeeping(self.queue, settings.queue_trim_interval_s)
        self._stopping = asyncio.Event()
        self.stopped_for: str | None = None
        """Why the worker stopped itself (a handler raised StopWorker), if it did."""

    def stop(self) -> None:
        """Finish what is running, read nothing new."""
        if not self._stopping.is_set():
            self._log.info("worker_stopping")
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    @property
    def exit_status(self) -> int:
        """What the process should exit with once :meth:`run` returned: 0, or
        ``EXIT_RESTART`` when a handler stopped the worker (StopWorker)."""
        return EXIT_RESTART if self.stopped_for else 0

    async def run(self) -> None:
        """Consume until :meth:`stop`; then wait up to the grace period for running tasks."""
        await through_outage(
            self.queue.ensure_group, self.link, self.settings.redis_retry_max_ms, "start"
        )
        self._log.info("worker_started", concurrency=self.concurrency)
        slots = [asyncio.create_task(self._slot()) for _ in range(self.concurrency)]
        stopped = asyncio.create_task(self._stopping.wait())
        chores = asyncio.create_task(self._chores())
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
            chores.cancel()
            for task in slots:
                task.cancel()
            # Bounded: a cancellation swallowed inside a Redis call must not hang shutdown.
            await asyncio.wait([*slots, stopped, chores], timeout=5)
        self._log.info("worker_stopped", reason=self.stopped_for or "asked")

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
        backoff = Reconnect(self.settings.redis_retry_max_ms)
        while not self.stopping:
            try:
                picked = await self._next()
            except REDIS_DOWN as exc:
                self.link.down(exc, "read")
                await backoff.wait()
                continue
            backoff.reset()
            self.link.up()
            if picked is not None:
                await self._process(picked)

    async def _chores(self) -> None:
        """The queue gauges and trimming, beside the slots (a long scene must not hold
        them up); waits through outages like everything else."""
        while not self.stopping:
            try:
                await self.housekeeping.run_due()
            except REDIS_DOWN as exc:
                self.link.down(exc, "housekeeping")
            await asyncio.sleep(self.housekeeping.tick_s)

    async def _next(self) -> Claimed | None:
        claimed = await self.reclaimer.next(lambda: self.stopping)
        if claimed is not None or self.stopping:
            return claimed
        entries = await self.queue.read_new(self.name, 1, self.settings.block_ms)
        return Claimed(entries[0], 1, None) if entries else None

    async def _process(self, claimed: Claimed) -> None:
        entry = claimed.entry
        try:
            task = decode_task(entry)
        except TaskDecodeError as exc:
            await self._undecodable(entry, str(exc))
            return
        delivery = Delivery(entry.id, task, claimed.deliveries)
        log = self._log.bind(
            job_id=task.job_id, scene_id=task.scene_id, attempt=delivery.attempt, entry_id=entry.id
        )
        token = lock_token(self.name, entry.id)
        writer = self.fences.writer(
            self.name, entry.id, task.scene_id, token, self.settings.lock_ttl_ms
        )
        ctx = TaskContext(delivery=delivery, log=log, writer=writer, lost=writer.lost)
        finished = asyncio.Event()
        self._running.add(entry.id)
        keep_alive = asyncio.create_task(self.keep_alive.run(writer, finished))
        metrics.TASKS_IN_FLIGHT.inc()
        try:
            if not await self._lock(writer, log):
                return  # stopping, or lost, while another delivery held the scene
            if claimed.previous is not None:
                await self._note_abandoned(writer, claimed)
            if await self._retry_redis(
                lambda: self.redis.sismember(self.keys.done(task.job_id), task.scene_id),
                "done check",
            ):
                await writer.transact(self._ack_only(entry.id), final=True)
                log.info("task_already_done")
                return
            await self._start(ctx)
            await self._work(ctx, entry)
        except Fenced as exc:
            metrics.TASKS_LOST.inc()
            log.warning("task_lost", reason=str(exc))
        finally:
            writer.close()
            metrics.TASKS_IN_FLIGHT.dec()
            # Told to stop rather than cancelled: redis-py can swallow a cancellation that
            # lands mid-command, which left the loop running and this await hanging.
            finished.set()
            try:
                await asyncio.wait_for(keep_alive, self.settings.heartbeat_ms * 3 / 1000)
            except (TimeoutError, Exception) as exc:
                log.warning("keep_alive_stopped_badly", error=repr(exc))
            self._running.discard(entry.id)
            await self._release(writer, log)

    async def _start(self, ctx: TaskContext) -> None:
        delivery = ctx.delivery
        opening = list(await self.before_start(delivery)) if self.before_start else []
        opening.append(
            SceneStarted(
                job_id=delivery.task.job_id,
                scene_id=delivery.task.scene_id,
                attempt=delivery.attempt,
                worker=self.name,
            )
        )
        await ctx.writer.append(opening)
        metrics.TASKS_STARTED.inc()

    async def _work(self, ctx: TaskContext, entry: Entry) -> None:
        """Run the handler and record how the delivery ended."""
        started = time.perf_counter()
        try:
            final = await self._run_handler(ctx)
        except Fenced:
            raise
        except StopWorker as exc:
            await self._failed(ctx, entry, exc)
            self.stopped_for = describe(exc)
            self._log.error("worker_cannot_continue", reason=self.stopped_for)
            self.stop()
        except Exception as exc:
            ctx.log.warning("task_error", exc_info=exc)
            await self._failed(ctx, entry, exc)
        else:
            elapsed = time.perf_counter() - started
            await self.outcomes.done(ctx, final)
            metrics.TASK_SECONDS.observe(elapsed)
            ctx.log.info("task_done", duration_ms=round(elapsed * 1000, 1))

    async def _run_handler(self, ctx: TaskContext) -> Sequence[EventBase]:
        """The handler's final events; raises what it raised, DeadlineExceeded past
        ``task_timeout_s`` or Fenced once the scene is lost (the handler is cancelled)."""
        work: asyncio.Future[Sequence[EventBase]] = asyncio.ensure_future(self.handler(ctx))
        lost: asyncio.Future[Any] = asyncio.ensure_future(ctx.lost.wait())
        watched: set[asyncio.Future[Any]] = {work, lost}
        try:
            done, _ = await asyncio.wait(
                watched,
                timeout=self.settings.task_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            lost.cancel()
            if not work.done():
                work.cancel()
                # A handler awaiting a thread unwinds at once; the thread runs on, but its
                # results reach nothing: the writer is closed when this delivery ends.
                await asyncio.wait({work}, timeout=_CANCEL_WAIT_S)
        if work in done:
            final: Sequence[EventBase] = work.result()
            return final
        if ctx.lost.is_set():
            raise Fenced("another worker took the scene over; the handler was stopped")
        raise DeadlineExceeded(f"the task ran past its {self.settings.task_timeout_s:g} s deadline")

    async def _failed(self, ctx: TaskContext, entry: Entry, exc: BaseException) -> None:
        error = AttemptError(
            attempt=ctx.delivery.attempt,
            error=describe(exc),
            consumer=self.name,
            failure=TRANSIENT if isinstance(exc, StopWorker) else failure_class(exc),
        )
        await self.outcomes.failed(ctx, entry, error)

    async def _note_abandoned(self, writer: SceneWriter, claimed: Claimed) -> None:
        """Record "stopped responding" for a previous delivery that ended with no error."""
        previous = claimed.previous
        assert previous is not None
        task = decode_task(claimed.entry)
        errors = await self._retry_redis(lambda: self.queue.errors(claimed.entry.id), "errors")
        if len(errors) >= previous.deliveries:
            return
        error = stopped_responding(previous, task)
        await self.outcomes.abandoned(writer, task, error)
        self._log.warning(
            "task_abandoned",
            entry_id=claimed.entry.id,
            error=error.error,
            job_id=task.job_id,
            scene_id=task.scene_id,
            attempt=error.attempt,
        )

    async def _lock(self, writer: SceneWriter, log: structlog.typing.FilteringBoundLogger) -> bool:
        """Take the scene lock, waiting while another delivery holds it."""
        o = writer.owner
        waited = False
        while True:
            if await self._retry_redis(
                lambda: self.locks.acquire(o.lock_key, o.token, o.lock_ttl_ms), "lock"
            ):
                writer.holding = True
                return True
            if not waited:
                owner = await self._retry_redis(lambda: self.locks.owner(o.lock_key), "lock")
                log.info("scene_locked_elsewhere", owner=owner)
                waited = True
            if self.stopping or writer.lost.is_set():
                return False
            await asyncio.sleep(min(0.2, self.settings.heartbeat_ms / 1000))

    async def _release(
        self, writer: SceneWriter, log: structlog.typing.FilteringBoundLogger
    ) -> None:
        """Free the scene lock if this delivery still holds it; with Redis away it expires."""
        if not writer.holding:
            return
        try:
            await self.locks.release(writer.owner.lock_key, writer.owner.token)
        except REDIS_DOWN as exc:
            log.warning("lock_left_to_expire", error=str(exc))

    def _ack_only(self, entry_id: str) -> Callable[[Pipeline], Awaitable[None]]:
        async def build(pipe: Pipeline) -> None:
            self.queue.stage_ack(pipe, entry_id)

        return build

    async def _undecodable(self, entry: Entry, reason: str) -> None:
        await self._retry_redis(
            lambda: self.queue.dead_letter_undecodable(entry, reason), "dead letter"
        )
        metrics.TASKS_DEAD.labels(reason="undecodable").inc()
        self._log.error("task_undecodable", entry_id=entry.id, error=reason)

    async def _retry_redis(self, call: Callable[[], Awaitable[T]], what: str) -> T:
        return await through_outage(call, self.link, self.settings.redis_retry_max_ms, what)
