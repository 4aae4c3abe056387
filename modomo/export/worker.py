"""``modomo exporter``: a small loop over the export queue.

Takes one request at a time: resolves its position, appends ``export_started``, folds the
log, packs the archive (publishing progress to a Redis hash the API reads), puts the zip
in the bucket under ``exports/<export_id>.zip``, then appends ``export_completed`` and acks
in one MULTI. A request that cannot succeed (unknown dataset, bad position, a mask missing
from storage) fails at once; any other error (a lost connection, S3 down) is an attempt's
failure, retried after the backoff until ``MODOMO_MAX_ATTEMPTS``. A worker that dies leaves
the entry pending; another claims it once idle past the backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from modomo.domain.events import ExportCompleted, ExportFailed, ExportRequested, ExportStarted
from modomo.export.archive import build_export
from modomo.export.pack import ExportError
from modomo.export.run import snapshot_at
from modomo.export.source import PositionError
from modomo.projections import db
from modomo.settings import Settings
from modomo.storage import Storage
from modomo.streams.delivery import consumer_name, describe
from modomo.streams.exports import ExportDelivery, ExportQueue
from modomo.streams.keys import Keys

PROGRESS_EVERY_S = 0.5


def export_key(export_id: str) -> str:
    return f"exports/{export_id}.zip"


class ExportWorker:
    def __init__(
        self, redis: Redis, settings: Settings, storage: Storage, *, name: str | None = None
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.storage = storage
        self.name = name or consumer_name()
        self.keys = Keys(settings.redis_prefix)
        self.queue = ExportQueue(redis, self.keys)
        self._stopping = asyncio.Event()
        self._ready = False
        self._log = structlog.get_logger("modomo.exporter").bind(worker=self.name)

    def stop(self) -> None:
        self._stopping.set()

    @property
    def stale_ms(self) -> int:
        """Idle time after which an entry is claimed: its worker died or its attempt failed."""
        return max(self.settings.retry_backoff_ms[0], 3 * self.settings.heartbeat_ms)

    async def run(self) -> None:
        """Consume until :meth:`stop`; the running export finishes first.

        Outlives an outage of Redis: a lost connection pauses the loop (with backoff up to
        5 s) and it carries on; an export interrupted by it stays pending and is claimed
        again, since only a finished one is acked.
        """
        self._log.info("exporter_started")
        failures = 0
        while not self._stopping.is_set():
            try:
                if failures or not self._ready:
                    await self.queue.ensure_group()
                    self._ready = True
                delivery = await self.queue.next(self.name, self.settings.block_ms, self.stale_ms)
                if delivery is not None:
                    await self.handle(delivery)
                failures = 0
            except (RedisError, OSError) as exc:
                failures += 1
                self._log.warning("exporter_connection_lost", error=describe(exc))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), min(0.5 * failures, 5.0))
        self._log.info("exporter_stopped")

    async def run_until_signal(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        await self.run()

    async def handle(self, delivery: ExportDelivery) -> None:
        request = delivery.request
        if request is None:
            self._log.error("export_undecodable", entry_id=delivery.entry_id, error=delivery.error)
            await self.queue.drop(delivery.entry_id)
            return
        log = self._log.bind(export_id=request.export_id, dataset_id=request.dataset_id)
        keeper = asyncio.create_task(self._keep_claim(delivery.entry_id))
        try:
            done = await self._export(request, delivery.deliveries, log)
            await self.queue.finish(delivery.entry_id, [done], request.export_id)
            log.info("export_done", key=done.key, bytes=done.size_bytes, scenes=done.scenes)
        except (ExportError, PositionError) as exc:
            log.warning("export_refused", error=str(exc))
            failed = ExportFailed(
                export_id=request.export_id, error=str(exc), attempt=delivery.deliveries
            )
            await self.queue.finish(delivery.entry_id, [failed], request.export_id)
        except Exception as exc:
            final = delivery.deliveries >= self.settings.max_attempts
            log.warning("export_failed", error=describe(exc), final=final, exc_info=exc)
            failed = ExportFailed(
                export_id=request.export_id,
                error=describe(exc),
                attempt=delivery.deliveries,
                will_retry=not final,
            )
            if final:
                await self.queue.finish(delivery.entry_id, [failed], request.export_id)
            else:
                await self.queue.log.append([failed])  # stays pending: claimed after backoff
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper

    async def _keep_claim(self, entry_id: str) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_ms / 1000)
            with contextlib.suppress(Exception):  # a missed beat only shortens the lease
                await self.queue.keep(self.name, entry_id)

    async def _export(self, request: ExportRequested, attempt: int, log: Any) -> ExportCompleted:
        conn = await db.connect(self.settings)
        try:
            snap = await snapshot_at(
                conn, self.redis, self.keys.events, request.dataset_id, request.as_of
            )
        finally:
            await conn.close()
        position, snapshot = snap.position, snap.dataset
        await self.queue.log.append(
            [
                ExportStarted(
                    export_id=request.export_id,
                    position=position,
                    scenes=len(snapshot.scene_ids(request.reviewed_only)),
                    attempt=attempt,
                    worker=self.name,
                )
            ]
        )
        log.info("export_started", position=position)
        last = 0.0
        pending: set[asyncio.Task[None]] = set()

        def progress(done: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if done == total or now - last >= PROGRESS_EVERY_S:
                last = now
                task = asyncio.create_task(self.queue.progress(request.export_id, done, total))
                pending.add(task)
                task.add_done_callback(pending.discard)

        built = await build_export(
            snapshot,
            fmt=request.format,
            position=position,
            reviewed_only=request.reviewed_only,
            blobs=self.storage,
            progress=progress,
        )
        await asyncio.gather(*pending, return_exceptions=True)
        key = export_key(request.export_id)
        await self.storage.put(key, built.data, "application/zip")
        return ExportCompleted(
            export_id=request.export_id,
            position=position,
            key=key,
            size_bytes=len(built.data),
            sha256=built.sha256,
            scenes=built.scenes,
            objects=built.objects,
        )


async def run_exporter(settings: Settings) -> int:
    """``modomo exporter``: serve the export queue until SIGTERM or SIGINT."""
    from modomo.streams.connection import connect

    redis = connect(settings)
    try:
        async with Storage.open(settings) as storage:
            await ExportWorker(redis, settings, storage).run_until_signal()
    finally:
        await redis.aclose()
    return 0
