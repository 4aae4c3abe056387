"""Running a projector: one active instance per projector (a lease row, renewed in every
batch's transaction), the others standing by; follow the Redis log in order from the
checkpoint; ride out PostgreSQL and Redis outages of any length.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Literal

import asyncpg
import structlog
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from modomo.projections import db, metrics
from modomo.projections.batch import apply_batch
from modomo.projections.lease import Lease, LeaseLost
from modomo.projections.projector import Checkpoint, LogEntry, Projector, load_checkpoint
from modomo.projections.source import log_after, stream_after, stream_gap
from modomo.settings import Settings
from modomo.streams.keys import Keys

TRANSIENT: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,  # 08xxx
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.OperatorInterventionError,  # 57xxx: shutdown, statement timeout
    asyncpg.InsufficientResourcesError,  # 53xxx: too many connections, disk full
    asyncpg.TransactionRollbackError,  # 40xxx: serialization failure, deadlock
    asyncpg.LockNotAvailableError,
    asyncpg.exceptions.InternalClientError,
    RedisConnectionError,
    RedisTimeoutError,
)
"""Failures of the servers or the network: retried with backoff, for as long as it takes."""

State = Literal["starting", "active", "standby", "reconnecting", "stopped"]


def backoff_s(failures: int, cap: float) -> float:
    """0.25 s doubling per consecutive failure, up to ``cap``."""
    return float(min(0.25 * 2 ** max(failures - 1, 0), cap))


class ProjectorRunner:
    """Keeps one projector caught up with the log until stopped."""

    def __init__(
        self, settings: Settings, redis: Redis, projector: Projector, *, lease_poll_s: float = 1.0
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.projector = projector
        self.keys = Keys(settings.redis_prefix)
        self.lease_poll_s = lease_poll_s
        self.lease = Lease(
            settings.db_log_schema,
            f"{settings.db_schema}:{projector.name}",
            settings.projector_lease_ms,
        )
        self.active = asyncio.Event()
        self.checkpoint = Checkpoint()
        self.state: State = "starting"
        self.last_error: str | None = None
        self._renewed_at = 0.0
        self._failures = 0
        """Consecutive failed tries; sets the pause before the next."""
        self._stopping = asyncio.Event()
        self._log = structlog.get_logger("modomo.projector").bind(projector=projector.name)

    @property
    def position(self) -> str:
        return self.checkpoint.position

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Project until :meth:`stop`; never returns earlier.

        Whatever breaks a batch rolls it back. A failure of PostgreSQL or Redis
        (:data:`TRANSIENT`) is retried with backoff up to 3 s between tries, for as long as
        the outage lasts; anything else (a bug, a missing table) is logged as an error and
        retried up to 30 s apart. Events PostgreSQL refuses are parked, never raised, so a
        failure repeating here is never one event's fault.
        """
        self._failures = 0
        while not self._stopping.is_set():
            conn: asyncpg.Connection[Any] | None = None
            try:
                conn = await db.connect(self.settings, pooled=True)
                if await self._lease(conn):
                    # Not a success yet: the backoff is reset by the first read of the log
                    # (in _follow). Reset here, a Redis outage had every runner retake its
                    # lease, reconnect and log twice every 0.25 s for the outage's length.
                    await self._follow(conn)
            except LeaseLost as exc:
                self._log.warning("projector_lease_lost", error=str(exc))
                self.state = "standby"
            except TRANSIENT as exc:
                self._failures += 1
                self._cut_off(exc)
                self._log.warning(
                    "projector_connection_lost", error=repr(exc), failures=self._failures
                )
                await self._pause(backoff_s(self._failures, 3.0))
            except Exception as exc:
                self._failures += 1
                self._cut_off(exc)
                self._log.error("projector_failed", error=repr(exc), exc_info=exc)
                await self._pause(backoff_s(self._failures, 30.0))
            finally:
                held = self.active.is_set()
                self.active.clear()
                metrics.ACTIVE.labels(self.projector.name).set(0)
                if conn is not None:
                    await self._close(conn, release=held and self._stopping.is_set())
        self.state = "stopped"

    def _cut_off(self, exc: BaseException) -> None:
        self.state = "reconnecting"
        self.last_error = f"{type(exc).__name__}: {exc}"[:300]

    async def _close(self, conn: asyncpg.Connection[Any], release: bool) -> None:
        if release and not conn.is_closed():
            # A clean stop hands the lease over at once instead of after its expiry.
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2), db.transaction(conn):
                    await self.lease.release(conn)
        conn.terminate()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _lease(self, conn: asyncpg.Connection[Any]) -> bool:
        waiting = False
        while not self._stopping.is_set():
            async with db.transaction(conn):
                # A holder stuck inside a batch keeps the row locked: do not queue behind it.
                await conn.execute("SET LOCAL lock_timeout = '1s'")
                try:
                    async with conn.transaction():
                        taken = await self.lease.acquire(conn)
                except asyncpg.LockNotAvailableError:
                    taken = False
                if taken:
                    self.checkpoint = await load_checkpoint(conn, self.projector)
                    self.projector.reset()
                    await self.projector.prepare(conn)
            if taken:
                self._renewed_at = time.monotonic()
                self.active.set()
                self.state = "active"
                self.last_error = None
                metrics.ACTIVE.labels(self.projector.name).set(1)
                self._log.info("projector_active", position=self.checkpoint.position)
                return True
            self.state = "standby"
            if not waiting:
                self._log.info("projector_standing_by")
                waiting = True
            await self._pause(self.lease_poll_s)
        return False

    async def _follow(self, conn: asyncpg.Connection[Any]) -> None:
        name = self.projector.name
        renew_every = self.settings.projector_lease_ms / 3000
        while not self._stopping.is_set():
            entries = await self._next_batch(conn)
            self._failures = 0  # both servers answered
            if not entries:
                if time.monotonic() - self._renewed_at > renew_every:
                    async with db.transaction(conn):
                        await self.lease.renew(conn)
                    self._renewed_at = time.monotonic()
                continue
            started = time.perf_counter()
            outcome = await apply_batch(conn, self.projector, entries, self.checkpoint, self.lease)
            self._renewed_at = time.monotonic()
            if not outcome.applied:
                self._log.info(
                    "projector_checkpoint_moved",
                    expected=self.checkpoint.position,
                    found=outcome.checkpoint.position,
                )
                self.projector.reset()
                self.checkpoint = outcome.checkpoint
                continue
            self.checkpoint = outcome.checkpoint
            metrics.BATCH_SECONDS.labels(name).observe(time.perf_counter() - started)
            metrics.EVENTS_APPLIED.labels(name).inc(len(entries))
            if outcome.parked:
                metrics.EVENTS_PARKED.labels(name).inc(outcome.parked)
                self._log.warning("projector_parked_events", count=outcome.parked)

    async def _next_batch(self, conn: asyncpg.Connection[Any]) -> list[LogEntry]:
        batch = self.settings.projector_batch
        position = self.checkpoint.position
        if await stream_gap(self.redis, self.keys.events, self.checkpoint.seen):
            # Entries after our position were trimmed from Redis: read them from the archive.
            async with db.transaction(conn):
                archived = await log_after(conn, position, batch)
            if archived:
                return self.projector.decode(archived)
            self._log.error("projector_gap_unrecoverable", position=position)
        return self.projector.decode(
            await stream_after(
                self.redis, self.keys.events, position, batch, self.settings.block_ms
            )
        )
