"""The dataset products over HTTP: exports run by the export worker, evaluations listed,
duplicate uploads warned about, similarity refused with a reason without pgvector."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from modomo.domain.events import EvaluationRecorded, ExportStarted
from modomo.export.run import export_dataset
from modomo.export.worker import ExportWorker
from modomo.projections import db
from modomo.settings import Settings
from modomo.storage import Storage
from modomo.streams.exports import ExportQueue
from modomo.streams.keys import EXPORT_GROUP, Keys
from modomo.synthetic.rooms import room
from tests.integration.api_support import Api, running_api
from tests.integration.products_support import Painted, painted_dataset
from tests.integration.projection_support import publish
from tests.integration.support import log_events, wait_for
from tests.uploads import post_upload

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(db_settings: Settings, s3_endpoint: str) -> AsyncIterator[Api]:
    async with running_api(db_settings, s3_endpoint) as running:
        yield running


@pytest.fixture
async def painted(api: Api, redis: Redis) -> AsyncIterator[tuple[Painted, Storage]]:
    async with Storage.open(api.settings) as storage:
        made = await painted_dataset(redis, api.settings, storage, scenes=2)
        async with api.client() as client:

            async def visible() -> bool:
                found = await client.get(f"/datasets/{made.dataset_id}")
                return found.status_code == 200 and found.json()["scene_count"] == 2

            await wait_for(visible, what="the painted dataset in the read models")
        yield made, storage


async def _worker(api: Api, redis: Redis, storage: Storage) -> tuple[ExportWorker, Any]:
    worker = ExportWorker(redis, api.settings, storage, name="exporter-test")
    return worker, asyncio.create_task(worker.run())


async def _done(client: httpx.AsyncClient, export_id: str) -> dict[str, Any]:
    final: dict[str, Any] = {}

    async def finished() -> bool:
        nonlocal final
        final = (await client.get(f"/exports/{export_id}")).json()
        return final["status"] in ("done", "failed")

    await wait_for(finished, within=60, what=f"export {export_id}")
    return final


async def test_an_export_request_is_built_by_the_worker_and_downloads_by_presigned_url(
    api: Api, redis: Redis, painted: tuple[Painted, Storage]
) -> None:
    made, storage = painted
    worker, running = await _worker(api, redis, storage)
    try:
        async with api.client() as client:
            asked = await client.post(
                f"/datasets/{made.dataset_id}/exports", json={"format": "coco"}
            )
            assert asked.status_code == 202, asked.text
            assert asked.json()["status"] == "queued"
            final = await _done(client, asked.json()["export_id"])
    finally:
        worker.stop()
        await asyncio.wait_for(running, 15)
    assert final["status"] == "done", final
    assert final["download_url"]
    async with httpx.AsyncClient() as plain:
        zipped = (await plain.get(final["download_url"])).content
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(zipped)).read("manifest.json"))
    assert manifest["position"] == final["position"]
    conn = await db.connect(api.settings)
    try:
        _, built = await export_dataset(
            conn,
            redis,
            Keys(api.settings.redis_prefix).events,
            storage,
            dataset_id=made.dataset_id,
            fmt="coco",
            as_of=final["position"],
        )
    finally:
        await conn.close()
    assert built.data == zipped  # the worker's archive is the CLI's, byte for byte
    assert final["sha256"] == built.sha256


async def test_an_export_abandoned_by_a_dead_worker_is_finished_by_another(
    api: Api, redis: Redis, painted: tuple[Painted, Storage]
) -> None:
    made, storage = painted
    keys = Keys(api.settings.redis_prefix)
    async with api.client() as client:
        asked = await client.post(
            f"/datasets/{made.dataset_id}/exports",
            json={"format": "parquet", "reviewed_only": False},
        )
        export_id = asked.json()["export_id"]
        queue = ExportQueue(redis, keys)
        await queue.ensure_group()
        # A worker reads the request and dies before doing anything with it.
        taken = await queue.next("doomed-worker", 100, 60_000)
        assert taken is not None
        assert taken.request is not None
        assert (await redis.xpending(keys.exports, EXPORT_GROUP))["pending"] == 1
        worker, running = await _worker(api, redis, storage)
        try:
            final = await _done(client, export_id)
        finally:
            worker.stop()
            await asyncio.wait_for(running, 15)
    assert final["status"] == "done", final
    assert (await redis.xpending(keys.exports, EXPORT_GROUP))["pending"] == 0
    started = [e for e in await log_events(redis, api.settings) if isinstance(e, ExportStarted)]
    assert [e.attempt for e in started] == [2]  # the second delivery did the work


async def test_bad_export_requests_are_refused_with_the_field_named(
    api: Api, painted: tuple[Painted, Storage]
) -> None:
    made, _ = painted
    async with api.client() as client:
        url = f"/datasets/{made.dataset_id}/exports"
        wrong = await client.post(url, json={"format": "tiff"})
        assert wrong.status_code == 400
        assert "format" in wrong.text
        when = await client.post(url, json={"format": "coco", "as_of": "soon"})
        assert when.status_code == 400
        assert "as_of" in when.text
        extra = await client.post(url, json={"format": "coco", "colour": "red"})
        assert extra.status_code == 400
        assert "colour" in extra.text
        nul = await client.post(url, json={"format": "coco", "as_of": "\u0000"})
        assert nul.status_code == 400
        assert (
            await client.post("/datasets/nope/exports", json={"format": "coco"})
        ).status_code == 404
        assert (await client.get("/exports/nope")).status_code == 404
        listed = (await client.get("/exports", params={"dataset_id": made.dataset_id})).json()
        assert listed["items"] == []
    async with api.client(role="viewer") as viewer:
        assert (await viewer.post(url, json={"format": "coco"})).status_code == 403


async def test_an_export_that_cannot_succeed_fails_at_once_with_the_reason(
    api: Api, redis: Redis, painted: tuple[Painted, Storage]
) -> None:
    made, storage = painted
    worker, running = await _worker(api, redis, storage)
    try:
        async with api.client() as client:
            asked = await client.post(
                f"/datasets/{made.dataset_id}/exports",
                json={"format": "coco", "as_of": "2000-01-01T00:00:00"},
            )
            final = await _done(client, asked.json()["export_id"])
    finally:
        worker.stop()
        await asyncio.wait_for(running, 15)
    assert final["status"] == "failed"
    assert "no entry at or before" in final["error"]
    assert final["attempts"] == 1


async def test_evaluations_are_listed_newest_first(api: Api, redis: Redis) -> None:
    first = EvaluationRecorded(
        evaluation_id="e1",
        golden="g.json",
        golden_sha256="abc",
        job_id="j1",
        metrics={"bbox_map": 0.5},
        per_class={"bbox_ap": {"sofa": 0.5}},
    )
    second = msgspec.structs.replace(
        first,
        evaluation_id="e2",
        job_id="j2",
        metrics={"bbox_map": 0.4},
        previous_id="e1",
        deltas={"bbox_map": -0.1},
        regressions=("bbox_map",),
    )
    await publish(redis, api.settings, [first, second])
    async with api.client(role="viewer") as client:

        async def both() -> bool:
            return len((await client.get("/evaluations")).json()["items"]) == 2

        await wait_for(both, what="the evaluations read model")
        page = (await client.get("/evaluations", params={"limit": 1})).json()
        assert [e["evaluation_id"] for e in page["items"]] == ["e2"]
        assert page["items"][0]["regressions"] == ["bbox_map"]
        rest = (await client.get("/evaluations", params={"cursor": page["next_cursor"]})).json()
        assert [e["evaluation_id"] for e in rest["items"]] == ["e1"]
        one = (await client.get("/evaluations/e1")).json()
        assert one["per_class"] == {"bbox_ap": {"sofa": 0.5}}
        assert (await client.get("/evaluations/none")).status_code == 404
        by_job = (await client.get("/evaluations", params={"job_id": "j1"})).json()
        assert [e["evaluation_id"] for e in by_job["items"]] == ["e1"]


async def _upload(client: httpx.AsyncClient, dataset_id: str, photos: list[bytes]) -> Any:
    uploads = (
        await client.post(
            f"/datasets/{dataset_id}/presign",
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
            await post_upload(plain, upload, photo)
    return await client.post(
        f"/datasets/{dataset_id}/register-scenes",
        json={"scenes": [{"scene_id": u["scene_id"]} for u in uploads]},
    )


async def test_registering_the_same_photo_twice_warns_and_still_registers(api: Api) -> None:
    photo, other = room(5, 64, 48), room(6, 64, 48)
    async with api.client() as client:
        first = (await client.post("/datasets", json={"name": "a"})).json()["dataset_id"]
        second = (await client.post("/datasets", json={"name": "b"})).json()["dataset_id"]
        once = await _upload(client, first, [photo, other, photo])
        assert once.status_code == 200, once.text
        body = once.json()
        assert len(body["registered"]) == 3
        (warning,) = body["warnings"]
        assert warning["duplicate_of"] == body["registered"][0]
        assert warning["scene_id"] == body["registered"][2]
        assert "same bytes" in warning["message"]
        again = (await _upload(client, second, [photo])).json()
        assert [w["dataset_id"] for w in again["warnings"]] == [first]
        fresh = (await _upload(client, second, [room(7, 64, 48)])).json()
        assert fresh["warnings"] == []


async def test_similarity_without_pgvector_says_what_is_missing(
    api: Api, painted: tuple[Painted, Storage]
) -> None:
    made, _ = painted
    async with api.client(role="viewer") as client:
        scene = await client.get(f"/scenes/{made.scene_ids[0]}/similar")
        assert scene.status_code == 503
        assert "pgvector" in scene.json()["detail"]
        some_object = made.objects[made.scene_ids[0]][0]
        found = await client.get(f"/objects/{some_object}/similar", params={"k": 3})
        assert found.status_code == 503
        assert (await client.get("/scenes/nope/similar")).status_code == 404
        assert (await client.get(f"/scenes/{made.scene_ids[0]}/similar?k=0")).status_code == 400
        # Everything else still works on this PostgreSQL.
        assert (await client.get(f"/scenes/{made.scene_ids[0]}")).status_code == 200
