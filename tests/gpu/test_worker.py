"""The GPU worker against the real Redis: events in order, artifacts, acks, HTTP, idle exit.

Object storage is a local folder (:class:`DirStorage`) until the API issue's S3 server is
part of the test set-up.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path

import pytest
from redis.asyncio import Redis

from modomo.demo.services import free_port
from modomo.domain.events import (
    STAGE_OF,
    DepthEstimated,
    MasksSegmented,
    SceneCompleted,
    SceneFailed,
    SceneStarted,
    WorkerWarming,
)
from modomo.domain.stages import STAGES
from modomo.gpu.models import Models
from modomo.gpu.pipeline import RUN_ORDER
from modomo.gpu.storage import DirStorage
from modomo.gpu.worker import GpuWorker
from modomo.settings import Settings
from modomo.streams.keys import Keys
from tests.gpu.images import jpeg_bytes, room_image
from tests.integration.conftest import fast_settings, prefix, redis  # noqa: F401
from tests.integration.support import enqueue, job_events, running, wait_for

pytestmark = [pytest.mark.gpu, pytest.mark.integration]


@pytest.fixture
def settings(prefix: str, gpu_settings: Settings) -> Settings:  # noqa: F811
    return fast_settings(
        prefix,
        model_profile="tiny",
        model_dir=gpu_settings.model_dir,
        device="cpu",
        worker_http_port=0,
        worker_idle_exit_s=0.0,
        max_attempts=1,
    )


async def test_worker_processes_scenes_end_to_end(
    redis: Redis,  # noqa: F811
    settings: Settings,
    models: Models,
    storage_root: Path,
) -> None:
    storage = DirStorage(storage_root)
    good = ["9d5e7b1c-1111-4a2b-9c3d-000000000001", "9d5e7b1c-1111-4a2b-9c3d-000000000002"]
    bad = "9d5e7b1c-1111-4a2b-9c3d-00000000000f"
    for i, scene_id in enumerate(good):
        await storage.put(f"scenes/{scene_id}.jpg", jpeg_bytes(room_image(seed=i)), "image/jpeg")
    await storage.put(f"scenes/{bad}.jpg", b"GIF89a but not really", "image/gif")
    gpu = GpuWorker(settings, storage, name="gpu-test")
    job_id, _ = await enqueue(redis, settings, [*good, bad])
    keys = Keys(settings.redis_prefix)

    async def finished() -> bool:
        events = await job_events(redis, settings, job_id)
        ends = [e for e in events if isinstance(e, SceneCompleted | SceneFailed)]
        return len(ends) == 3

    async with running(redis, settings, gpu.handle, before_start=gpu.opening):
        await wait_for(finished, within=120, what="three scenes to end")

    events = await job_events(redis, settings, job_id)
    assert sum(isinstance(e, WorkerWarming) for e in events) == 1
    # warming comes before the worker's first scene_start of the job
    assert events.index(next(e for e in events if isinstance(e, WorkerWarming))) < min(
        i for i, e in enumerate(events) if isinstance(e, SceneStarted)
    )
    for scene_id in good:
        mine = [e for e in events if getattr(e, "scene_id", None) == scene_id]
        kinds = [type(e) for e in mine]
        assert kinds[0] is SceneStarted
        assert [STAGE_OF[k] for k in kinds[1:-1]] == list(RUN_ORDER)  # type: ignore[index]
        assert set(RUN_ORDER) == set(STAGES)
        done = mine[-1]
        assert isinstance(done, SceneCompleted)
        assert done.status == "ok"
        assert done.objects > 0
        assert 0 < done.avg_conf <= 1
        depth = next(e for e in mine if isinstance(e, DepthEstimated))
        assert (storage_root / depth.depth_key).is_file()
        masks = next(e for e in mine if isinstance(e, MasksSegmented))
        for mask in masks.masks:
            assert (storage_root / f"masks/{scene_id}/{mask.object_id}.png").is_file()
            assert (storage_root / f"thumbs/{scene_id}/{mask.object_id}.jpg").is_file()
    failed = [e for e in events if isinstance(e, SceneFailed)]
    assert [f.scene_id for f in failed] == [bad]
    assert "not an image" in failed[0].error
    assert await redis.smembers(keys.done(job_id)) == {s.encode() for s in good}
    pending = await redis.xpending(keys.queue, "gpu-workers")
    assert pending["pending"] == 0


def _http(method: str, url: str) -> dict[str, object]:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(request, timeout=30) as reply:
        body: dict[str, object] = json.loads(reply.read())
        return body


async def test_serve_answers_health_and_warmup_then_exits_when_idle(
    redis: Redis,  # noqa: F811
    settings: Settings,
    models: Models,
    storage_root: Path,
) -> None:
    import msgspec

    idle = msgspec.structs.replace(settings, worker_http_port=free_port(), worker_idle_exit_s=1.5)
    gpu = GpuWorker(idle, DirStorage(storage_root), name="gpu-idle")
    serving = asyncio.create_task(gpu.serve(redis, handle_signals=False))
    await wait_for(lambda: _ready(gpu), within=60, what="the worker to be warm")
    base = f"http://127.0.0.1:{gpu.http_port}"
    health = await asyncio.to_thread(_http, "GET", f"{base}/health")
    assert health["ok"] is True
    assert health["gpu_mem_used"] == 0  # the CPU
    assert health["models_loaded"] is True
    warm = await asyncio.to_thread(_http, "POST", f"{base}/warmup")
    assert warm["profile"] == "tiny"
    assert set(warm["models"]) == {"clip", "yolo", "sam2", "grounding_dino", "depth", "captioner"}  # type: ignore[arg-type]
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(serving, 20)  # returns by itself once idle for 1.5 s
    assert asyncio.get_running_loop().time() - started < 15


async def _ready(gpu: GpuWorker) -> bool:
    return gpu.models is not None and gpu.http_port != 0


def test_models_pull_without_a_hub_fails_with_a_sentence(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    env = dict(
        os.environ,
        HF_HUB_OFFLINE="1",
        YOLO_OFFLINE="1",
        MODOMO_MODEL_DIR=str(tmp_path / "models"),
        YOLO_CONFIG_DIR=str(tmp_path),
    )
    result = subprocess.run(
        [sys.executable, "-m", "modomo.cli", "models", "pull"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 1
    assert "needs a machine that reaches the model hubs" in result.stderr
    assert not (tmp_path / "models" / "modomo-models.json").exists()
