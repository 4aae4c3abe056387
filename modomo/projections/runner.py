"""Running a projector: one active instance per projector (a Postgres advisory lock held
for the session), the others standing by; follow the Redis log in order from the
checkpoint; reconnect after Postgres or Redis goes away.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import asyncpg
import structlog
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from modomo.projections import db, metrics
from modomo.projections.projector import (
    LogEntry,
    Projector,
    apply_batch,
    read_checkpoint,
)
from modomo.projections.source import entries_added, log_after, stream_after, stream_gap
from modomo.settings import Settings
from modomo.streams.keys import Keys

_RETRYABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.exceptions.InternalClientError,
    RedisConnectionError,
    RedisTimeoutError,
)


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
        self.active = asyncio.Event()
        self.position = "0-0"
        self._stopping = asyncio.Event()
        self._log = structlog.get_logger("modomo.projector").bind(projector=projector.name)

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Project until :meth:`stop`, surviving restarts of Postgres and Redis.

        Whatever breaks a batch (a lost connection, a server shutting down, an unexpected
        error) rolls that batch back; the runner reconnects, takes the lease again and
        resumes from the checkpoint, so nothing is lost or applied twice. Events that can
        never apply are parked, not raised, so a repeating failure here is infrastructure
        and is logged as an error each time.
        """
        failures = 0
        while not self._stopping.is_set():
            conn: asyncpg.Connection[Any] | None = None
            try:
                conn = await db.connect(self.settings)
                if await self._lease(conn):
                    await self.projector.prepare(conn)
                    failures = 0
                    await self._follow(conn)
            except _RETRYABLE as exc:
                failures += 1
                self._log.warning("projector_connection_lost", error=repr(exc))
                await self._pause(min(0.5 * failures, 5.0))
            except Exception as exc:
                failures += 1
                self._log.error("projector_failed", error=repr(exc), exc_info=exc)
                await self._pause(min(0.5 * 2**failures, 30.0))
            finally:
                self.active.clear()
                metrics.ACTIVE.labels(self.projector.name).set(0)
                if conn is not None and not conn.is_closed():
                    conn.terminate()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _lease(self, conn: asyncpg.Connection[Any]) -> bool:
        key = self.projector.lease_key(self.settings.db_schema)
        waiting = False
        while not self._stopping.is_set():
            if await conn.fetchval("SELECT pg_try_advisory_lock($1)", key):
                self.active.set()
                metrics.ACTIVE.labels(self.projector.name).set(1)
                self._log.info("projector_active")
                return True
            if not waiting:
                self._log.info("projector_standing_by")
                waiting = True
            await self._pause(self.lease_poll_s)
        return False

    async def _follow(self, conn: asyncpg.Connection[Any]) -> None:
        name = self.projector.name
        self.position, seen = await read_checkpoint(conn, self.projector)
        while not self._stopping.is_set():
            entries = await self._next_batch(conn, seen)
            if not entries:
                continue
            started = time.perf_counter()
            found = await apply_batch(conn, self.projector, entries, self.position)
            if found is not None:
                self._log.info("projector_checkpoint_moved", expected=self.position, found=found)
                self.projector.reset()
                self.position, seen = await read_checkpoint(conn, self.projector)
                continue
            self.position = entries[-1].entry_id
            seen += len(entries)
            metrics.BATCH_SECONDS.labels(name).observe(time.perf_counter() - started)
            metrics.EVENTS_APPLIED.labels(name).inc(len(entries))
            added = await entries_added(self.redis, self.keys.events)
            if added is not None:
                metrics.LAG.labels(name).set(max(added - seen, 0))

    async def _next_batch(self, conn: asyncpg.Connection[Any], seen: int) -> list[LogEntry]:
        batch = self.settings.projector_batch
        if await stream_gap(self.redis, self.keys.events, seen):
            # Entries after our position were trimmed from Redis: read them from the archive.
            archived = await log_after(conn, self.position, batch)
            if archived:
                return self.projector.decode(archived)
            self._log.error("projector_gap_unrecoverable", position=self.position)
        return self.projector.decode(
            await stream_after(
                self.redis, self.keys.events, self.position, batch, self.settings.block_ms
            )
        )
