"""Originals in real object storage (SeaweedFS): input errors end a scene at once, a
download is capped, a changed original is refused, and a storage outage is waited out."""

from __future__ import annotations

import asyncio
import io
import random
import tracemalloc
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from PIL import Image
from redis.asyncio import Redis

from modomo.domain.events import (
    JobCompleted,
    JobCreated,
    SceneCompleted,
    SceneDeadLettered,
    SceneFailed,
    SceneStarted,
)
from modomo.domain.failures import InputError
from modomo.domain.stages import SceneTask
from modomo.gpu.storage import Retrying
from modomo.settings import Settings
from modomo.storage import Storage, scene_key
from modomo.streams.completion import JobCompletion
from modomo.streams.dead import DeadLetters
from modomo.streams.keys import Keys
from modomo.streams.log import EventLog
from tests.faults.servers import SeaweedFS
from tests.faults.storage_proc import fetching, thumbnail_key
from tests.faults.workers import STORAGE_WORKER, WorkerProcess
from tests.integration.s3 import ACCESS_KEY, SECRET_KEY
from tests.integration.support import job_events, running, wait_for

CAP = 20_000
"""The download cap of these tests (``max_upload_bytes``)."""


def jpeg(width: int = 64, height: int = 48, *, noise: bool = False, seed: int = 0) -> bytes:
    if noise:
        pixels = random.Random(seed).randbytes(width * height * 3)
        image = Image.frombytes("RGB", (width, height), pixels)
    else:
        image = Image.new("RGB", (width, height), (120 + seed % 100, 80, 40))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def bomb_png() -> bytes:
    """9000 x 9000 pixels (81 M, over the 80 M limit) in about 10 kB."""
    out = io.BytesIO()
    Image.new("1", (9000, 9000)).save(out, "PNG", optimize=True)
    return out.getvalue()


def s3_settings(settings: Settings, endpoint: str, **changes: Any) -> Settings:
    return msgspec.structs.replace(
        settings,
        s3_endpoint_url=endpoint,
        s3_access_key_id=ACCESS_KEY,
        s3_secret_access_key=SECRET_KEY,
        s3_bucket=f"b-{settings.redis_prefix}",
        max_upload_bytes=CAP,
        **changes,
    )


@pytest.fixture
async def bucket(settings: Settings, s3_endpoint: str) -> AsyncIterator[tuple[Settings, Storage]]:
    # Backoffs long enough that "failed before the first backoff" means something.
    here = s3_settings(settings, s3_endpoint, retry_backoff_ms=(5000, 10000), heartbeat_ms=500)
    async with Storage.open(here) as storage:
        await storage.ensure_bucket()
        yield here, storage


async def enqueue_tasks(redis: Redis, settings: Settings, tasks: list[SceneTask]) -> str:
    """A job over ``tasks`` (their etags and keys as given), with its size recorded."""
    job_id = tasks[0].job_id
    keys = Keys(settings.redis_prefix)
    created = JobCreated(job_id=job_id, dataset_id="d", scene_ids=tuple(t.scene_id for t in tasks))
    async with redis.pipeline(transaction=True) as pipe:
        await EventLog(redis, keys).stage(pipe, [created], tasks)
        JobCompletion(redis, keys, 3600).stage_total(pipe, job_id, len(tasks))
        await pipe.execute()
    return job_id


async def test_input_errors_fail_the_scene_at_once_and_go_dead_with_reason_input(
    redis: Redis, bucket: tuple[Settings, Storage]
) -> None:
    settings, storage = bucket
    good = jpeg()
    originals = {
        "ok": good,
        "not-an-image": b"hello, this is a text file uploaded as image/jpeg\n" * 4,
        "truncated": good[: len(good) // 2],
        "too-large": jpeg(200, 200, noise=True),
        "bomb": bomb_png(),
        "changed": good,
    }
    assert len(originals["too-large"]) > CAP > max(len(originals["bomb"]), len(good))
    etags = {}
    for name, data in originals.items():
        await storage.put(scene_key(name), data, "image/jpeg")
        info = await storage.head(scene_key(name))
        assert info is not None
        etags[name] = info.etag
    # Overwritten after it was checked and registered (the presigned PUT is still valid).
    await storage.put(scene_key("changed"), jpeg(seed=7), "image/jpeg")
    job = "job-inputs"
    tasks = [
        SceneTask(job_id=job, scene_id=name, r2_key_original=scene_key(name), etag=etags[name])
        for name in originals
    ]
    tasks.append(SceneTask(job_id=job, scene_id="gone", r2_key_original=scene_key("gone")))
    await enqueue_tasks(redis, settings, tasks)
    fetch = fetching(Retrying(storage), settings)
    seen: Counter[str] = Counter()

    async def handler(ctx: Any) -> Any:
        seen[ctx.delivery.task.scene_id] += 1
        return await fetch(ctx)

    async with running(redis, settings, handler):

        async def ended() -> bool:
            events = await job_events(redis, settings, job)
            return any(isinstance(e, JobCompleted) for e in events)

        await wait_for(ended, within=30, what="the job to end")

    events = await job_events(redis, settings, job)
    first_backoff_s = settings.retry_backoff_ms[0] / 1000
    expected = {
        "not-an-image": "not an image",
        "truncated": "truncated or corrupt",
        "too-large": "download limit",
        "bomb": "decompression bomb",
        "changed": "changed after it was registered",
        "gone": "gone from storage",
    }
    for scene, words in expected.items():
        mine = [e for e in events if getattr(e, "scene_id", None) == scene]
        assert [type(e) for e in mine] == [SceneStarted, SceneFailed, SceneDeadLettered], scene
        started, failed, dead = mine
        assert isinstance(failed, SceneFailed)
        assert isinstance(dead, SceneDeadLettered)
        assert (failed.will_retry, failed.failure, failed.attempt) == (False, "input", 1)
        assert words in failed.error, (scene, failed.error)
        assert dead.reason == "input"
        # Dead at once: well inside the first backoff, where a retry would have waited.
        assert (failed.at - started.at).total_seconds() < first_backoff_s, scene
    dead_entries = {
        d.scene_id: d for d in await DeadLetters(redis, Keys(settings.redis_prefix)).oldest()
    }
    assert set(dead_entries) == set(expected)
    assert {d.reason for d in dead_entries.values()} == {"input"}
    assert {d.attempts for d in dead_entries.values()} == {1}
    assert seen == dict.fromkeys([*originals, "gone"], 1)  # no input error was retried
    assert any(isinstance(e, SceneCompleted) and e.scene_id == "ok" for e in events)
    [end] = [e for e in events if isinstance(e, JobCompleted)]
    assert (end.ok, end.failed) == (1, len(expected))


async def test_seaweedfs_killed_and_restarted_mid_job_the_worker_waits_it_out(
    tmp_path: Path, settings: Settings, redis: Redis
) -> None:
    with SeaweedFS(tmp_path / "s3") as s3:
        here = s3_settings(settings, s3.endpoint, task_timeout_s=60.0, stage_timeout_s=60.0)
        scenes = [f"s{i:02d}" for i in range(16)]
        async with Storage.open(here) as storage:
            await storage.ensure_bucket()
            etags = {}
            for i, scene in enumerate(scenes):
                await storage.put(scene_key(scene), jpeg(seed=i), "image/jpeg")
                info = await storage.head(scene_key(scene))
                assert info is not None
                etags[scene] = info.etag
        job = "job-s3"
        await enqueue_tasks(
            redis,
            here,
            [
                SceneTask(job_id=job, scene_id=s, r2_key_original=scene_key(s), etag=etags[s])
                for s in scenes
            ],
        )
        worker = WorkerProcess(
            here, tmp_path / "worker.log", STORAGE_WORKER, MODOMO_TEST_SLOW_S="0.2"
        )
        try:

            async def done() -> int:
                events = await job_events(redis, here, job)
                return sum(isinstance(e, SceneCompleted) for e in events)

            async def under_way() -> bool:
                return await done() >= 3

            await wait_for(under_way, within=60, what="the job to be under way")
            done_before = await done()
            s3.kill()
            await asyncio.sleep(2.0)
            during = await done()
            assert worker.alive, "the worker exited when storage went away"
            s3.start()

            async def ended() -> bool:
                events = await job_events(redis, here, job)
                return any(isinstance(e, JobCompleted) for e in events)

            await wait_for(ended, within=90, what="the job to end after the restart")
            assert worker.alive
        finally:
            assert worker.stop() == 0
        async with Storage.open(here) as storage:
            for scene in scenes:
                assert await storage.head(thumbnail_key(scene)) is not None
    assert done_before < len(scenes)  # the outage hit mid-job
    assert during < len(scenes)
    assert worker.events("storage_unavailable"), worker.log_text()[-2000:]
    events = await job_events(redis, here, job)
    assert Counter(e.scene_id for e in events if isinstance(e, SceneCompleted)) == dict.fromkeys(
        scenes, 1
    )
    assert not any(isinstance(e, SceneFailed) for e in events)  # waited out, not failed


async def test_an_oversize_original_is_refused_without_being_held_in_memory(
    bucket: tuple[Settings, Storage],
) -> None:
    _, storage = bucket
    big = random.Random(1).randbytes(4 * 1024 * 1024)
    await storage.put("scenes/big.jpg", big, "image/jpeg")
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="download limit"):
            await storage.get("scenes/big.jpg", max_bytes=CAP)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024  # far below the 4 MiB object
    assert len(await storage.get("scenes/big.jpg", max_bytes=len(big))) == len(big)
