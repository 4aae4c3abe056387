"""The whole system through HTTP with real worker processes (tiny models): a review and a
replay, and a worker killed in the middle of a scene."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from modomo.demo.services import free_port, settings_env
from modomo.domain.events import SceneCompleted, SceneStarted
from modomo.projections.registry import READ_MODEL_PROJECTORS, select
from modomo.projections.replay import replay
from modomo.settings import Settings
from modomo.synthetic.rooms import room
from tests.integration.api_support import Api, running_api
from tests.integration.projection_support import dump
from tests.integration.support import ROOT, job_events, stop_process, wait_for
from tests.uploads import post_upload

pytestmark = pytest.mark.integration


@pytest.fixture
async def system(
    db_settings: Settings, s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Api]:
    models = tmp_path_factory.getbasetemp() / "e2e-models"
    settings = msgspec.structs.replace(
        db_settings,
        model_profile="tiny",
        model_dir=str(models),
        metrics_port=0,
        retry_backoff_ms=(1500, 3000),
        heartbeat_ms=200,
        lock_ttl_ms=3000,
    )
    async with running_api(settings, s3_endpoint) as api:
        yield api


def _worker(api: Api) -> subprocess.Popen[bytes]:
    settings = msgspec.structs.replace(api.settings, worker_http_port=free_port())
    env = settings_env(settings) | {"HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "modomo.cli", "worker"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _job(api: Api, client: httpx.AsyncClient, scenes: int) -> tuple[str, list[str]]:
    dataset = (await client.post("/datasets", json={"name": "e2e"})).json()["dataset_id"]
    photos = [room(100 + i) for i in range(scenes)]
    uploads = (
        await client.post(
            f"/datasets/{dataset}/presign",
            json={
                "files": [
                    {"filename": f"{i}.jpg", "content_type": "image/jpeg", "size_bytes": len(p)}
                    for i, p in enumerate(photos)
                ]
            },
        )
    ).json()["uploads"]
    async with httpx.AsyncClient() as plain:
        for upload, photo in zip(uploads, photos, strict=True):
            assert (await post_upload(plain, upload, photo)).status_code == 204
    ids = [u["scene_id"] for u in uploads]
    registered = await client.post(
        f"/datasets/{dataset}/register-scenes", json={"scenes": [{"scene_id": s} for s in ids]}
    )
    assert registered.status_code == 200, registered.text
    job = await client.post("/jobs", json={"dataset_id": dataset})
    assert job.status_code == 201, job.text
    return job.json()["job_id"], ids


async def _finished(client: httpx.AsyncClient, job_id: str) -> bool:
    return (await client.get(f"/jobs/{job_id}")).json()["status"] in (
        "succeeded",
        "partial",
        "failed",
    )


async def test_review_then_replay_gives_the_same_tables(system: Api) -> None:
    api = system
    worker = _worker(api)
    try:
        async with api.client() as client:
            job_id, scene_ids = await _job(api, client, 2)
            await wait_for(lambda: _finished(client, job_id), within=300, what="the job")
            scene = (await client.get(f"/scenes/{scene_ids[0]}")).json()
            assert scene["objects"], "the tiny detector finds furniture in the synthetic room"
            refs = scene["model_refs"]
            assert set(refs) == {
                "scene", "style", "detect", "label", "segment", "material", "depth", "caption",
                "palette",
            }  # fmt: skip
            assert {r["profile"] for r in refs.values()} == {"tiny"}
            for stage in ("detect", "depth", "caption"):  # the weights each result came from
                assert refs[stage]["digest"].startswith("sha256:"), refs[stage]
                assert refs[stage]["id"] == scene["models"][stage]
            target = scene["objects"][0]
            patched = await client.patch(
                f"/objects/{target['object_id']}",
                json={"category": "sofa", "materials": ["velvet"], "attrs": {"colour": "green"}},
            )
            assert patched.status_code == 200, patched.text
            review = await client.post(
                "/reviews",
                json={
                    "scene_id": scene_ids[0],
                    "object_id": target["object_id"],
                    "verdict": "fix",
                    "note": "it is a sofa",
                },
            )
            assert review.status_code == 201
            again = (await client.get(f"/objects/{target['object_id']}")).json()
            assert (again["category"], again["attrs"]["colour"]) == ("sofa", "green")
            assert [m["code"] for m in again["materials"]] == ["velvet"]
    finally:
        stop_process(worker)
    before = await dump(api.settings)
    result = await replay(api.settings, select(list(READ_MODEL_PROJECTORS)))
    assert result.swapped
    assert await dump(api.settings) == before


async def test_a_worker_killed_mid_scene_still_gives_every_scene_once(
    redis: Redis, system: Api
) -> None:
    api = system
    first = _worker(api)
    second: subprocess.Popen[bytes] | None = None
    try:
        async with api.client() as client:
            job_id, scene_ids = await _job(api, client, 3)

            async def started() -> bool:
                events = await job_events(redis, api.settings, job_id)
                return any(isinstance(e, SceneStarted) for e in events)

            await wait_for(started, within=300, what="the first worker to start a scene")
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            second = _worker(api)
            await wait_for(
                lambda: _finished(client, job_id),
                within=300,
                what="the second worker to finish the job",
            )
            job = (await client.get(f"/jobs/{job_id}")).json()
            page = (await client.get(f"/datasets/{job['dataset_id']}/scenes")).json()
    finally:
        stop_process(first)
        if second is not None:
            stop_process(second)
    assert (job["status"], job["ok"], job["total"]) == ("succeeded", 3, 3)
    assert sorted(s["scene_id"] for s in page["items"]) == sorted(scene_ids)
    events = await job_events(redis, api.settings, job_id)
    done = [e.scene_id for e in events if isinstance(e, SceneCompleted)]
    assert sorted(done) == sorted(scene_ids)  # every scene completed exactly once
