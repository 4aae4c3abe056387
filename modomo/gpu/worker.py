"""``modomo worker``: the GPU worker process around the streams runtime.

It loads the models once (at start, or on ``POST /warmup``), then consumes scene tasks
through :class:`~modomo.streams.worker.Worker`, whose lock, retry and dead-letter rules
apply unchanged: the pipeline is its handler. The first task of each job it touches is
preceded by ``warming``; each stage's result is appended as it finishes; ``scene_done``
goes out atomically with the ack. It exits cleanly after ``MODOMO_WORKER_IDLE_EXIT_S``
without work (a pod scales to zero) and on SIGTERM finishes the scene it is running.

Without real weights it refuses to start (exit 2) unless a random-weight profile is asked
for explicitly. ``GET /health`` answers 503 until the models are loaded and while Redis is
unreachable. A model call that hangs past its stage deadline cannot be stopped (it runs
on a thread), so the worker records the failure and exits with status 3 for its
supervisor to restart it; it never exits on a Redis or storage outage.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog
from redis.asyncio import Redis

from modomo.domain.events import EventBase, WorkerWarming
from modomo.gpu import metrics
from modomo.gpu.batcher import Batcher
from modomo.gpu.models import Models
from modomo.gpu.pipeline import Pipeline
from modomo.gpu.runtime import Runtime, choose_runtime, gpu_memory_used, prepare_environment
from modomo.gpu.storage import DirStorage, ObjectStore, Retrying
from modomo.settings import Settings
from modomo.streams.delivery import EXIT_RESTART, Delivery, TaskContext, consumer_name
from modomo.streams.outage import Link
from modomo.streams.worker import Worker

log = structlog.get_logger("modomo.gpu.worker")


def derive_concurrency(settings: Settings, runtime: Runtime, models_bytes: int) -> int:
    """Scenes in flight: the setting, else what the GPU memory left by the models allows.

    A scene's activations are taken to need about as much memory as the models themselves
    (a cautious rule that gives the specification's 1 scene on 24 GB and 2 on 48 GB for
    the ~9 GB default stack). Sequential mode stays at 1 or 2; optimized mode goes up to
    ``worker_max_batch`` so the batches can fill.
    """
    if settings.worker_concurrency:
        return settings.worker_concurrency
    cap = 2 if settings.worker_mode == "sequential" else settings.worker_max_batch
    if not runtime.cuda:
        return 1 if settings.worker_mode == "sequential" else cap
    import torch

    total = int(torch.cuda.get_device_properties(torch.device(runtime.device)).total_memory)
    per_scene = max(models_bytes, 2 * 1024**3)
    return max(1, min(cap, (total - models_bytes) // per_scene))


class GpuWorker:
    """Models, pipeline and HTTP endpoints of one worker process."""

    def __init__(
        self,
        settings: Settings,
        storage: ObjectStore,
        *,
        name: str | None = None,
        runtime: Runtime | None = None,
    ) -> None:
        self.settings = settings
        self.storage = Retrying(storage)
        self.name = name or consumer_name()
        self.link = Link(log.bind(worker=self.name))
        """Whether the streams loop reaches Redis (shared with it, for /health)."""
        self.stopped_for: str | None = None
        """Why the worker stopped itself for a restart (a hung model call), if it did."""
        self.worker: Worker | None = None
        """The streams loop, once :meth:`serve` has started it."""
        self.runtime = runtime
        self.models: Models | None = None
        self.pipeline: Pipeline | None = None
        self.batcher = Batcher(
            settings.worker_max_batch if settings.worker_mode == "optimized" else 1
        )
        self._load_lock = asyncio.Lock()
        self._warmed_jobs: set[str] = set()
        self._busy = 0
        self._last_active = time.monotonic()
        self.http_port = 0

    async def warmup(self) -> Models:
        """Load the models (once; later calls return the loaded ones)."""
        async with self._load_lock:
            if self.models is None:
                from modomo.gpu.registry import get_models

                prepare_environment()
                started = time.perf_counter()
                runtime = self.runtime or choose_runtime(
                    self.settings.device, self.settings.torch_threads
                )
                self.runtime = runtime
                self.models = await asyncio.to_thread(get_models, self.settings, runtime)
                self.pipeline = Pipeline(
                    self.models, self.storage, self.settings, batcher=self.batcher
                )
                metrics.MODELS_LOADED.set(1)
                metrics.GPU_MEMORY.set(gpu_memory_used(runtime))
                log.info(
                    "worker_warm",
                    profile=self.models.profile,
                    device=runtime.device,
                    seconds=round(time.perf_counter() - started, 2),
                )
            return self.models

    async def opening(self, delivery: Delivery) -> Sequence[EventBase]:
        """``warming`` before the first scene this worker starts for a job."""
        job_id = delivery.task.job_id
        if job_id in self._warmed_jobs:
            return []
        self._warmed_jobs.add(job_id)
        return [WorkerWarming(job_id=job_id, worker=self.name)]

    async def handle(self, ctx: TaskContext) -> Sequence[EventBase]:
        """The streams runtime's handler: one scene through the pipeline."""
        task = ctx.delivery.task
        self._busy += 1
        try:
            await self.warmup()
            assert self.pipeline is not None
            try:
                done = await self.pipeline.run(task, ctx.emit, attempt=ctx.delivery.attempt)
            except Exception:
                metrics.SCENES_FAILED.inc()
                raise
            metrics.SCENES_PROCESSED.labels(status=done.status).inc()
            return [done]
        finally:
            metrics.GPU_MEMORY.set(gpu_memory_used(self.runtime))
            self._busy -= 1
            self._last_active = time.monotonic()

    def health(self) -> tuple[int, dict[str, Any]]:
        """``GET /health``: 200 once the models are loaded while Redis answers, else 503
        with ``status`` saying why (``loading``, ``degraded``, ``stopping``); the
        specification's fields plus what helps an operator."""
        if self.stopped_for:
            status = "stopping"
        elif self.models is None:
            status = "loading"
        elif not self.link.reachable:
            status = "degraded"
        else:
            status = "ok"
        body = {
            "ok": status == "ok",
            "status": status,
            "redis": "ok" if self.link.reachable else "unreachable",
            "redis_error": None if self.link.reachable else self.link.last_error,
            "gpu_mem_used": gpu_memory_used(self.runtime),
            "models_loaded": self.models is not None,
            "profile": self.models.profile if self.models else None,
            "digests": {r: ref.digest for r, ref in self.models.refs().items()}
            if self.models
            else None,
            "device": self.runtime.device if self.runtime else None,
            "in_flight": self._busy,
            "worker": self.name,
            "stopped_for": self.stopped_for,
        }
        return (200 if status == "ok" else 503), body

    async def warmup_response(self) -> dict[str, Any]:
        """``POST /warmup``: loads the models and says which."""
        models = await self.warmup()
        return {
            "ok": True,
            "profile": models.profile,
            "models": {role: ref.id for role, ref in models.refs().items()},
            "gpu_mem_used": gpu_memory_used(self.runtime),
        }

    async def serve(self, redis: Redis, *, handle_signals: bool = True) -> None:
        """Preload, then consume until stopped, signalled or idle for too long."""
        from modomo.gpu import http

        runner = None
        if self.settings.worker_http_port:
            app = http.make_app(
                self.health,
                self.warmup_response,
                warmup_token=self.settings.worker_token,
                metrics_token=self.settings.metrics_token,
            )
            runner, self.http_port = await http.start(
                app, self.settings.worker_http_host, self.settings.worker_http_port
            )
        try:
            models = await self.warmup()
            assert self.runtime is not None
            concurrency = derive_concurrency(
                self.settings, self.runtime, gpu_memory_used(self.runtime)
            )
            log.info(
                "worker_ready",
                mode=self.settings.worker_mode,
                concurrency=concurrency,
                profile=models.profile,
                http_port=self.http_port,
            )
            worker = Worker(
                redis,
                self.settings,
                self.handle,
                name=self.name,
                concurrency=concurrency,
                before_start=self.opening,
                link=self.link,
            )
            self.worker = worker
            idle = asyncio.create_task(self._idle_watch(worker))
            try:
                await (worker.run_until_signal() if handle_signals else worker.run())
            finally:
                idle.cancel()
                self.stopped_for = worker.stopped_for
        finally:
            if runner is not None:
                await runner.cleanup()
            self.batcher.close()

    def stop(self) -> None:
        """Finish the running scenes, take no more (as SIGTERM does)."""
        if self.worker is not None:
            self.worker.stop()

    async def _idle_watch(self, worker: Worker) -> None:
        limit = self.settings.worker_idle_exit_s
        if not limit:
            return
        self._last_active = time.monotonic()
        while not worker.stopping:
            await asyncio.sleep(min(1.0, limit / 4))
            if not self._busy and time.monotonic() - self._last_active >= limit:
                log.info("worker_idle_exit", idle_s=limit)
                worker.stop()


async def run_worker(settings: Settings, storage_dir: str | None = None) -> int:
    """Entry point of ``modomo worker``: S3 storage unless ``storage_dir`` is given.

    Returns 2 (with a sentence on stderr) when the profile asks for real weights that are
    not there. Ends the process with :data:`EXIT_RESTART` when a hung model call stopped
    the worker: a thread cannot be stopped, and a normal exit would wait for it forever.
    """
    from modomo.gpu.registry import NoWeightsError, check_profile
    from modomo.storage import Storage
    from modomo.streams.connection import connect

    try:
        check_profile(settings)
    except NoWeightsError as exc:
        print(f"modomo worker: {exc}", file=sys.stderr)
        return 2
    prepare_environment()
    redis = connect(settings)
    try:
        if storage_dir:
            gpu = GpuWorker(settings, DirStorage(Path(storage_dir)))
            await gpu.serve(redis)
        else:
            async with Storage.open(settings, attempts=1) as bucket:
                gpu = GpuWorker(settings, bucket)
                await gpu.serve(redis)
    finally:
        await redis.aclose()
    if gpu.stopped_for:
        log.error("worker_exit_for_restart", reason=gpu.stopped_for, exit_code=EXIT_RESTART)
        print(f"modomo worker: restart needed: {gpu.stopped_for}", file=sys.stderr, flush=True)
        sys.stdout.flush()
        logging.shutdown()
        os._exit(EXIT_RESTART)
    return 0
