"""The projector process's own view of itself, independent of its runners' progress.

On an interval, whether or not the runners can make progress, it:

- sets ``modomo_projector_lag_events`` from how many entries Redis has ever taken and the
  checkpoints in PostgreSQL (or, while PostgreSQL is unreachable, the runners' last known
  ones), so a stalled projector shows a growing lag, never a stale one;
- sets ``modomo_projector_parked_open`` (parked entries no operator has resolved);
- trims the Redis log below every checkpoint, keeping ``MODOMO_PROJECTOR_TRIM_MARGIN``
  entries more (every ``MODOMO_PROJECTOR_TRIM_INTERVAL_S``);
- knows whether Redis and PostgreSQL answer, for ``GET /health``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

import asyncpg
import structlog
from redis.asyncio import Redis

from modomo.projections import db, metrics
from modomo.projections.parking import open_counts
from modomo.projections.runner import ProjectorRunner
from modomo.projections.source import entries_added
from modomo.projections.status import trim_log
from modomo.settings import Settings
from modomo.streams.keys import Keys

CHECK_TIMEOUT_S = 2.0
"""How long one check of Redis or PostgreSQL may take before that server counts as down."""

log = structlog.get_logger("modomo.projector")


class Monitor:
    """Gauges, health and trimming for the runners of one process."""

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        runners: Sequence[ProjectorRunner],
        interval_s: float = 2.0,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.runners = list(runners)
        self.interval_s = interval_s
        self.stream = Keys(settings.redis_prefix).events
        self.redis_state = "unknown"
        self.postgres_state = "unknown"
        self._conn: asyncpg.Connection[Any] | None = None
        self._lock = asyncio.Lock()
        self._trimmed_at = time.monotonic()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        """Refresh every ``interval_s`` until stopped."""
        try:
            while not self._stopping.is_set():
                await self.refresh()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.interval_s)
        finally:
            if self._conn is not None:
                self._conn.terminate()

    async def refresh(self, trim: bool = True) -> None:
        """Check both servers and update the gauges (and trim, when it is time)."""
        async with self._lock:
            added = await self._added()
            seen, parked = await self._from_postgres()
            for runner in self.runners:
                name = runner.projector.name
                if added is not None:
                    done = seen.get(name, runner.checkpoint.seen)
                    metrics.LAG.labels(name).set(max(added - done, 0))
                if parked is not None and runner.projector.parks:
                    metrics.PARKED_OPEN.labels(name).set(parked.get(name, 0))
            if trim:
                await self._maybe_trim()

    def health(self) -> tuple[int, dict[str, Any]]:
        """(HTTP status, body) of ``GET /health``: 503 ``degraded`` while Redis or
        PostgreSQL does not answer; each projector says whether it is active, standing by
        or reconnecting (with the last error)."""
        ok = self.redis_state == "ok" and self.postgres_state == "ok"
        projectors = {
            r.projector.name: r.state
            + (f": {r.last_error}" if r.state == "reconnecting" and r.last_error else "")
            for r in self.runners
        }
        body = {
            "ok": ok,
            "status": "ok" if ok else "degraded",
            "redis": self.redis_state,
            "postgres": self.postgres_state,
            "projectors": projectors,
        }
        return (200 if ok else 503), body

    async def _added(self) -> int | None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await self.redis.ping()
                added = await entries_added(self.redis, self.stream)
        except Exception as exc:
            self.redis_state = f"down: {type(exc).__name__}"
            return None
        self.redis_state = "ok"
        return added

    async def _from_postgres(self) -> tuple[dict[str, int], dict[str, int] | None]:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                if self._conn is None or self._conn.is_closed():
                    self._conn = await db.connect(self.settings, pooled=True)
                conn = self._conn
                async with db.transaction(conn):
                    rows = await conn.fetch(
                        "SELECT name, events_seen FROM projector_checkpoints "
                        "UNION ALL SELECT name, events_seen FROM log_checkpoints"
                    )
                parked = await open_counts(conn)
        except Exception as exc:
            self.postgres_state = f"down: {type(exc).__name__}"
            if self._conn is not None:
                self._conn.terminate()
                self._conn = None
            return {}, None
        self.postgres_state = "ok"
        return {r["name"]: int(r["events_seen"]) for r in rows}, parked

    async def _maybe_trim(self) -> None:
        every = self.settings.projector_trim_interval_s
        if not every or time.monotonic() - self._trimmed_at < every:
            return
        if self._conn is None or self.redis_state != "ok":
            return
        self._trimmed_at = time.monotonic()
        try:
            async with asyncio.timeout(max(CHECK_TIMEOUT_S, 10.0)):
                removed = await trim_log(
                    self._conn, self.redis, self.stream, self.settings.projector_trim_margin
                )
        except Exception as exc:
            log.warning("log_trim_failed", error=repr(exc))
            return
        if removed:
            metrics.LOG_TRIMMED.inc(removed)
            log.info("log_trimmed", removed=removed)
