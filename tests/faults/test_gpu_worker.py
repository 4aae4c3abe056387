"""The GPU worker itself (tiny random-weight models on the CPU): /health states, a model
call hung past its stage deadline, and the refusal to start without real weights."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from modomo.demo.services import free_port
from modomo.domain.events import JobCreated, SceneFailed, SceneStarted, StageEvent, WorkerWarming
from modomo.domain.stages import STAGES, SceneTask, StageFlags
from modomo.gpu.models import Models
from modomo.gpu.pipeline import Pipeline, SceneRun
from modomo.gpu.registry import NoWeightsError, check_profile
from modomo.gpu.storage import DirStorage
from modomo.gpu.worker import GpuWorker
from modomo.settings import Settings
from modomo.streams.connection import connect
from modomo.streams.keys import GPU_GROUP, Keys
from modomo.streams.log import EventLog
from tests.faults.servers import RedisServer
from tests.gpu.conftest import gpu_settings, models  # noqa: F401 - fixtures, shared
from tests.gpu.images import jpeg_bytes, room_image
from tests.integration.conftest import fast_settings
from tests.integration.support import ROOT, job_events, wait_for


def worker_settings(prefix: str, gpu: Settings, **changes: Any) -> Settings:
    return fast_settings(
        prefix,
        model_profile="tiny",
        model_dir=gpu.model_dir,
        device="cpu",
        worker_idle_exit_s=0.0,
        **changes,
    )


async def test_health_is_503_until_the_models_load_and_while_redis_is_unreachable(
    tmp_path: Path,
    prefix: str,
    redis_server: RedisServer,
    gpu_settings: Settings,  # noqa: F811
    models: Models,  # noqa: F811
) -> None:
    settings = worker_settings(
        prefix, gpu_settings, redis_url=redis_server.url, worker_http_port=free_port()
    )
    redis = connect(settings)
    gpu = GpuWorker(settings, DirStorage(tmp_path / "bucket"), name="health")
    await gpu._load_lock.acquire()  # the models are "still loading" until released
    serving = asyncio.create_task(gpu.serve(redis, handle_signals=False))
    seen: list[tuple[int, str]] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.worker_http_port}") as http:

        async def answers(status: int, state: str) -> bool:
            try:
                response = await http.get("/health", timeout=2)
            except httpx.HTTPError:
                return False
            body = response.json()
            if not seen or seen[-1] != (response.status_code, body["status"]):
                seen.append((response.status_code, body["status"]))
            return response.status_code == status and body["status"] == state

        try:
            await wait_for(lambda: answers(503, "loading"), within=30, what="503 loading")
            gpu._load_lock.release()
            await wait_for(lambda: answers(200, "ok"), within=60, what="200 once loaded")
            redis_server.kill()
            await wait_for(lambda: answers(503, "degraded"), within=30, what="503 without Redis")
            body = (await http.get("/health")).json()
            assert body["redis"] == "unreachable"
            assert body["redis_error"]
            redis_server.start()
            await wait_for(lambda: answers(200, "ok"), within=30, what="200 after the restart")
            final = (await http.get("/health")).json()
        finally:
            gpu.stop()
            await asyncio.wait_for(serving, 30)
            await redis.aclose()
    assert seen == [(503, "loading"), (200, "ok"), (503, "degraded"), (200, "ok")]
    assert final["profile"] == "tiny"
    assert all(d.startswith("sha256:") for d in final["digests"].values())


async def test_a_model_call_hung_past_its_stage_deadline_stops_the_worker_for_a_restart(
    tmp_path: Path,
    prefix: str,
    redis: Redis,
    gpu_settings: Settings,  # noqa: F811
    models: Models,  # noqa: F811
) -> None:
    settings = worker_settings(prefix, gpu_settings, worker_http_port=0, stage_timeout_s=1.0)
    storage = DirStorage(tmp_path / "bucket")
    await storage.put("scenes/hung.jpg", jpeg_bytes(room_image(seed=3)), "image/jpeg")
    gpu = GpuWorker(settings, storage, name="hung")
    await gpu.warmup()
    assert gpu.pipeline is not None
    release = threading.Event()

    async def hung_depth(p: Pipeline, s: SceneRun) -> StageEvent:
        # A model call that never returns, on the GPU thread where every model call runs.
        await p._infer("depth", lambda images: [release.wait(120) for _ in images], s.pil)
        raise AssertionError("the hung call returned")

    gpu.pipeline.stage_fns["depth"] = hung_depth
    job_id = "job-hung"
    task = SceneTask(
        job_id=job_id,
        scene_id="hung",
        r2_key_original="scenes/hung.jpg",
        stages=StageFlags(**{stage: stage == "depth" for stage in STAGES}),
    )
    keys = Keys(prefix)
    await EventLog(redis, keys).append(
        [JobCreated(job_id=job_id, dataset_id="d", scene_ids=("hung",))], [task]
    )
    try:
        await asyncio.wait_for(gpu.serve(redis, handle_signals=False), 60)
        status, body = gpu.health()
    finally:
        release.set()  # let the thread end with the test
    assert gpu.stopped_for is not None
    assert "past the 1 s stage deadline" in gpu.stopped_for
    assert (status, body["status"]) == (503, "stopping")
    events = await job_events(redis, settings, job_id)
    assert [type(e) for e in events[1:]] == [WorkerWarming, SceneStarted, SceneFailed]
    failed = events[-1]
    assert isinstance(failed, SceneFailed)
    assert (failed.attempt, failed.will_retry, failed.failure) == (1, True, "transient")
    assert "StopWorker" in failed.error
    pending: Any = await redis.xpending(keys.queue, GPU_GROUP)
    assert pending["pending"] == 1  # left for a healthy worker
    assert not await redis.exists(keys.lock("hung"))


def test_a_worker_without_real_weights_refuses_to_start(tmp_path: Path) -> None:
    empty = tmp_path / "models"
    for profile in ("auto", "real"):
        result = subprocess.run(
            [sys.executable, "-m", "modomo.cli", "worker"],
            cwd=ROOT,
            env=os.environ
            | {
                "PYTHONPATH": str(ROOT),
                "MODOMO_MODEL_PROFILE": profile,
                "MODOMO_MODEL_DIR": str(empty),
                "MODOMO_WORKER_HTTP_PORT": "0",
                "MODOMO_LOG_FORMAT": "json",
            },
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        assert result.returncode == 2, (profile, result.stderr[-2000:])
        assert "modomo models pull" in result.stderr
        assert "MODOMO_MODEL_PROFILE=tiny" in result.stderr
    settings = Settings.from_env({}, model_dir=str(empty))
    assert check_profile(msgspec.structs.replace(settings, model_profile="tiny")) == "tiny"
    with pytest.raises(NoWeightsError, match="no real model weights"):
        check_profile(settings)
