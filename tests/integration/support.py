"""Helpers shared by the integration tests."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
from redis.asyncio import Redis

from modomo.demo.services import free_port
from modomo.demo.services import settings_env as environment_of
from modomo.domain.codec import CODEC
from modomo.domain.events import Event, JobCreated
from modomo.domain.stages import SceneTask
from modomo.settings import Settings
from modomo.streams.completion import JobCompletion
from modomo.streams.delivery import BeforeStart, Handler
from modomo.streams.keys import EVENT_FIELD, Keys
from modomo.streams.log import Appended, EventLog
from modomo.streams.worker import Worker
from tests.integration.handlers import calls_key
from tests.integration.s3 import ACCESS_KEY, SECRET_KEY

ROOT = Path(__file__).resolve().parents[2]


def stack_settings(
    db_settings: Settings, s3_endpoint: str, tmp_path: Path, bucket: str, **overrides: Any
) -> Settings:
    """Settings for a whole local stack (``modomo up`` or ``demo``) on the session's
    servers: its own bucket and ports, the tiny models, JSON logs."""
    values: dict[str, Any] = {
        "s3_endpoint_url": s3_endpoint,
        "s3_access_key_id": ACCESS_KEY,
        "s3_secret_access_key": SECRET_KEY,
        "s3_bucket": f"{bucket}-{db_settings.redis_prefix}",
        "api_port": free_port(),
        "worker_http_port": free_port(),
        "model_profile": "tiny",
        "model_dir": str(tmp_path / "models"),
        "metrics_port": 0,
        "log_format": "json",
        "retry_backoff_ms": (15_000, 60_000),
        "heartbeat_ms": 1000,
        "lock_ttl_ms": 10_000,
    }
    return msgspec.structs.replace(db_settings, **(values | overrides))


async def enqueue(
    redis: Redis,
    settings: Settings,
    scene_ids: Sequence[str],
    job_id: str | None = None,
    count_scenes: bool = False,
) -> tuple[str, Appended]:
    """Create a job over ``scene_ids`` and enqueue one task per scene, atomically; with
    ``count_scenes``, record the job's size as the API does, so it ends with job_done."""
    job_id = job_id or str(uuid.uuid4())
    created = JobCreated(job_id=job_id, dataset_id="d", scene_ids=tuple(scene_ids))
    tasks = [
        SceneTask(job_id=job_id, scene_id=s, r2_key_original=f"scenes/{s}.jpg") for s in scene_ids
    ]
    keys = Keys(settings.redis_prefix)
    async with redis.pipeline(transaction=True) as pipe:
        staged = await EventLog(redis, keys).stage(pipe, [created], tasks)
        if count_scenes:
            JobCompletion(redis, keys, 3600).stage_total(pipe, job_id, len(scene_ids))
        appended = staged.read(await pipe.execute())
    return job_id, appended


async def wait_for(
    check: Callable[[], Awaitable[bool]], within: float = 20.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(0.05)


async def job_events(redis: Redis, settings: Settings, job_id: str) -> list[Event]:
    rows: Any = await redis.xrange(Keys(settings.redis_prefix).job_events(job_id))
    return [CODEC.decode(fields[EVENT_FIELD]) for _, fields in rows]


async def log_events(redis: Redis, settings: Settings) -> list[Event]:
    rows: Any = await redis.xrange(Keys(settings.redis_prefix).events)
    return [CODEC.decode(fields[EVENT_FIELD]) for _, fields in rows]


async def calls(redis: Redis, settings: Settings, scene_id: str) -> list[tuple[float, int, int]]:
    """Every handler call for ``scene_id``: (monotonic time, attempt, pid)."""
    raw: Any = await redis.lrange(calls_key(settings.redis_prefix, scene_id), 0, -1)
    out = []
    for item in raw:
        t, attempt, pid = item.decode().split()
        out.append((float(t), int(attempt), int(pid)))
    return out


@asynccontextmanager
async def running(
    redis: Redis,
    settings: Settings,
    handler: Handler,
    concurrency: int = 1,
    name: str | None = None,
    before_start: BeforeStart | None = None,
) -> AsyncIterator[Worker]:
    """A worker in this process, stopped cleanly on exit."""
    worker = Worker(
        redis, settings, handler, concurrency=concurrency, name=name, before_start=before_start
    )
    await worker.queue.ensure_group()
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.stop()
        await asyncio.wait_for(task, 15)


def settings_env(settings: Settings) -> dict[str, str]:
    """The child environment for ``settings``, able to import the tests' own modules."""
    return environment_of(settings) | {"PYTHONPATH": str(ROOT)}


def spawn_worker(settings: Settings, **extra_env: str) -> subprocess.Popen[bytes]:
    """A worker process running the scene-id-driven test handler; waits until it is ready."""
    env = settings_env(settings) | extra_env
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.integration.worker_proc"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=None if os.environ.get("MODOMO_TEST_WORKER_LOGS") else subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == b"ready", f"worker did not start: {line!r}"
    return proc


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    proc.wait(10)
