"""Faults seen through the API: an original overwritten after registration, and the live
stream of a job whose Redis stream has expired."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from modomo.gpu.storage import Retrying
from modomo.settings import Settings
from modomo.storage import Storage
from modomo.streams.keys import Keys
from tests.faults.storage_proc import fetching
from tests.faults.test_storage import jpeg
from tests.integration.api_support import Api, pipeline_handler, running_api
from tests.integration.support import enqueue, running, wait_for
from tests.uploads import post_upload


@pytest.fixture
async def api(db_settings: Settings, s3_endpoint: str) -> AsyncIterator[Api]:
    settings = msgspec.structs.replace(
        db_settings, job_retention_s=1, retry_backoff_ms=(5000, 10000), heartbeat_ms=500
    )
    async with running_api(settings, s3_endpoint) as running:
        yield running


async def _settled(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    body: dict[str, Any] = {}

    async def ended() -> bool:
        nonlocal body
        body = (await client.get(f"/jobs/{job_id}")).json()
        return body["status"] in ("succeeded", "partial", "failed")

    await wait_for(ended, within=30, what="the job to end in the read model")
    return body


async def test_an_original_overwritten_after_registration_fails_as_an_input_error(
    api: Api, redis: Redis
) -> None:
    photos = [jpeg(seed=1), jpeg(seed=2)]
    swap = jpeg(seed=3)
    size = max(len(p) for p in (*photos, swap))
    async with api.client() as client, httpx.AsyncClient() as plain:
        dataset = (await client.post("/datasets", json={"name": "etag"})).json()["dataset_id"]
        uploads = (
            await client.post(
                f"/datasets/{dataset}/presign",
                json={
                    "files": [
                        {"filename": f"{i}.jpg", "content_type": "image/jpeg", "size_bytes": size}
                        for i in range(2)
                    ]
                },
            )
        ).json()["uploads"]
        for upload, photo in zip(uploads, photos, strict=True):
            put = await post_upload(plain, upload, photo)
            assert put.status_code == 204, put.text
        ids = [u["scene_id"] for u in uploads]
        registered = await client.post(
            f"/datasets/{dataset}/register-scenes", json={"scenes": [{"scene_id": s} for s in ids]}
        )
        assert registered.status_code == 200, registered.text
        # The upload form is still valid: the uploader swaps the checked image afterwards.
        swapped = await post_upload(plain, uploads[1], swap)
        assert swapped.status_code == 204, swapped.text
        job = (await client.post("/jobs", json={"dataset_id": dataset})).json()
        async with Storage.open(api.settings) as storage:
            handler = fetching(Retrying(storage), api.settings)
            async with running(redis, api.settings, handler):
                summary = await _settled(client, job["job_id"])
        kept = (await client.get(f"/scenes/{ids[0]}")).json()
        changed = (await client.get(f"/scenes/{ids[1]}")).json()
        scenes_of_job = (await client.get(f"/jobs/{job['job_id']}")).json()
    assert (summary["ok"], summary["failed"]) == (1, 1)
    assert kept["status"] == "ok"
    assert changed["status"] == "failed"
    assert scenes_of_job["failed"] == 1
    dead = await redis.xrange(Keys(api.settings.redis_prefix).dead)
    [(_, fields)] = dead
    assert fields[b"reason"] == b"input"
    assert fields[b"scene_id"].decode() == ids[1]
    assert b"changed after it was registered" in fields[b"error"]


async def test_a_finished_job_whose_stream_expired_is_served_from_the_archive(
    api: Api, redis: Redis
) -> None:
    settings = api.settings
    keys = Keys(settings.redis_prefix)
    job_id, _ = await enqueue(redis, settings, ["a", "b"], count_scenes=True)
    async with running(redis, settings, pipeline_handler):

        async def expired() -> bool:
            return not await redis.exists(keys.job_events(job_id), keys.job_meta(job_id))

        await wait_for(expired, within=20, what="the job's keys to expire after job_done")
    async with api.client() as client:

        async def archived() -> bool:
            response = await client.get(f"/jobs/{job_id}/events")
            return response.status_code == 200 and "event: job_done" in response.text

        await wait_for(archived, within=20, what="the archive to serve the expired job")
        full = (await client.get(f"/jobs/{job_id}/events")).text
        ids = [line[4:] for line in full.splitlines() if line.startswith("id: ")]
        resumed = (
            await client.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": ids[2]})
        ).text
        missing = await client.get("/jobs/no-such-job/events")
    kinds = [line[7:] for line in full.splitlines() if line.startswith("event: ")]
    assert kinds[0] == "job_created"
    assert kinds.count("scene_done") == 2
    assert kinds[-1] == "job_done"
    assert [line[4:] for line in resumed.splitlines() if line.startswith("id: ")] == ids[3:]
    assert missing.status_code == 404
