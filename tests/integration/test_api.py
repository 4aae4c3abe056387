"""The API over real HTTP, with the real Redis, PostgreSQL and S3 server (SeaweedFS)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from modomo.api.auth import create_api_key
from modomo.projections import db
from modomo.settings import Settings
from tests.integration.api_support import (
    PNG,
    Api,
    dataset_with_scenes,
    pipeline_handler,
    running_api,
)
from tests.integration.support import running
from tests.uploads import post_upload

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(db_settings: Settings, s3_endpoint: str) -> AsyncIterator[Api]:
    async with running_api(db_settings, s3_endpoint) as running_:
        yield running_


async def test_presigned_upload_flow_against_a_real_s3_server(api: Api) -> None:
    dataset_id, scene_ids = await dataset_with_scenes(api, 3)
    async with api.client() as client:
        again = await client.post(
            f"/datasets/{dataset_id}/register-scenes",
            json={"scenes": [{"scene_id": s} for s in scene_ids]},
        )
        assert again.json()["registered"] == []
        assert sorted(again.json()["already_registered"]) == sorted(scene_ids)
        missing = await client.post(
            f"/datasets/{dataset_id}/register-scenes",
            json={"scenes": [{"scene_id": "never-uploaded"}]},
        )
        assert missing.status_code == 409
        assert "never-uploaded: not uploaded" in missing.text

        presigned = await client.post(
            f"/datasets/{dataset_id}/presign",
            json={
                "files": [
                    {"filename": "x.jpg", "content_type": "image/jpeg", "size_bytes": len(PNG)}
                ]
            },
        )
        upload = presigned.json()["uploads"][0]
        assert upload["method"] == "POST"
        assert upload["max_bytes"] == len(PNG)
        async with httpx.AsyncClient() as plain:
            # The policy names the type: a form claiming another is refused by the storage.
            retyped = {**upload, "fields": {**upload["fields"], "Content-Type": "text/plain"}}
            wrong_type = await post_upload(plain, retyped, PNG, "text/plain")
            assert wrong_type.status_code == 403, wrong_type.text
            # ... and the key: the form cannot write anywhere else in the bucket.
            elsewhere = {**upload, "fields": {**upload["fields"], "key": "scenes/other.jpg"}}
            moved = await post_upload(plain, elsewhere, PNG)
            assert moved.status_code == 403, moved.text
            signature = upload["fields"]["x-amz-signature"]
            forged = "0" + signature[1:] if signature[0] != "0" else "1" + signature[1:]
            tampered = {**upload, "fields": {**upload["fields"], "x-amz-signature": forged}}
            bad = await post_upload(plain, tampered, PNG)
            assert bad.status_code == 403, bad.text
            from modomo.storage import Storage

            async with Storage.open(api.settings) as storage:
                short = await storage.presign_post(
                    "scenes/expiring.jpg", "image/jpeg", len(PNG), ttl_s=1
                )
                await asyncio.sleep(2.1)
                form = {"method": "POST", "url": short.url, "fields": short.fields}
                expired = await post_upload(plain, form, PNG)
                assert expired.status_code == 403, expired.text
                assert await storage.head("scenes/expiring.jpg") is None
                assert await storage.head(upload["key"]) is None  # no refused form wrote

        scenes = await client.get(f"/datasets/{dataset_id}/scenes", params={"limit": 2})
        page = scenes.json()
        assert len(page["items"]) == 2
        assert page["next_cursor"]
        rest = await client.get(
            f"/datasets/{dataset_id}/scenes", params={"limit": 2, "cursor": page["next_cursor"]}
        )
        listed = [s["scene_id"] for s in page["items"] + rest.json()["items"]]
        assert listed == sorted(scene_ids)
        assert rest.json()["next_cursor"] is None
        dataset = await client.get(f"/datasets/{dataset_id}")
        assert dataset.json()["scene_count"] == 3


async def _read_sse(response: httpx.Response, limit: int | None = None) -> list[dict[str, str]]:
    events: list[dict[str, str]] = []
    current: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "id" in current:
                events.append(current)
                if limit is not None and len(events) >= limit:
                    return events
            current = {}
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        current[field] = value.lstrip(" ")
    return events


async def test_job_sse_reconnect_history_and_the_read_side(redis: Redis, api: Api) -> None:
    dataset_id, scene_ids = await dataset_with_scenes(api, 3)
    settings = api.settings
    async with api.client() as client:
        job = await client.post(
            "/jobs", json={"dataset_id": dataset_id, "stages": {"caption": False}}
        )
        assert job.status_code == 201, job.text
        job_id = job.json()["job_id"]
        assert job.json()["status"] == "queued"
        assert job.json()["total"] == 3

        async with client.stream("GET", f"/jobs/{job_id}/events") as first:
            assert first.headers["content-type"].startswith("text/event-stream")
            assert first.headers["x-accel-buffering"] == "no"
            head = await _read_sse(first, limit=2)
        assert [e["event"] for e in head] == ["job_created", "scene_queued"]

        async with running(redis, settings, pipeline_handler, concurrency=2):
            headers = {"Last-Event-ID": head[-1]["id"]}
            async with client.stream("GET", f"/jobs/{job_id}/events", headers=headers) as second:
                rest = await _read_sse(second)
        ids = [e["id"] for e in head + rest]
        assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
        assert len(ids) == len(set(ids))
        kinds = [e["event"] for e in rest]
        assert kinds.count("scene_done") == 3
        assert kinds.count("scene_start") == 3
        assert kinds[-1] == "job_done"  # the stream ended after the job's final event

        async with client.stream("GET", f"/jobs/{job_id}/events") as late:
            history = await _read_sse(late)
        assert [e["id"] for e in history] == ids
        payload = msgspec.json.decode(history[-1]["data"])
        assert payload["type"] == "job_done"
        assert (payload["status"], payload["ok"], payload["failed"]) == ("succeeded", 3, 0)

        done = (await client.get(f"/jobs/{job_id}")).json()
        assert (done["status"], done["ok"], done["progress"]) == ("succeeded", 3, 1.0)
        assert {t["stage"] for t in done["stage_timings"]} == {"scene", "style", "detect", "depth"}
        jobs = (await client.get("/jobs", params={"dataset_id": dataset_id})).json()
        assert [j["job_id"] for j in jobs["items"]] == [job_id]

        scene = (await client.get(f"/scenes/{scene_ids[0]}")).json()
        assert scene["scene_type"] == "living_room"
        assert scene["models"]["detect"] == "yolo"
        assert scene["styles"] == [{"code": "modern", "score": pytest.approx(0.7), "model": "clip"}]
        # Links to this API, each redirecting to a presigned URL of the bucket.
        assert scene["original_url"].startswith(f"{api.url}/media/scenes/")
        async with httpx.AsyncClient(follow_redirects=True) as plain:
            original = await plain.get(scene["original_url"])
        assert original.content == PNG
        assert str(original.url).startswith(settings.s3_endpoint_url)
        [obj] = scene["objects"]
        corrected = await client.patch(
            f"/objects/{obj['object_id']}", json={"category": "armchair", "materials": ["leather"]}
        )
        assert corrected.status_code == 200, corrected.text
        assert corrected.json()["category"] == "armchair"
        assert [m["code"] for m in corrected.json()["materials"]] == ["leather"]
        assert corrected.json()["corrected_by"] == "alice"
        review = await client.post(
            "/reviews",
            json={
                "scene_id": scene_ids[0],
                "object_id": obj["object_id"],
                "verdict": "fix",
                "note": "a chair",
            },
        )
        assert review.status_code == 201, review.text
        reviews = (await client.get("/reviews", params={"scene_id": scene_ids[0]})).json()
        assert [r["verdict"] for r in reviews] == ["fix"]

        overview = (await client.get("/stats/overview")).json()
        assert overview["scenes"] == 3
        assert overview["objects"] == 3
        assert overview["corrected_objects"] == 1
        categories = (await client.get("/stats/distribution/category")).json()
        assert {b["key"]: b["count"] for b in categories} == {"armchair": 1, "sofa": 2}
        types = (
            await client.get("/stats/distribution/scene_type", params={"dataset_id": dataset_id})
        ).json()
        assert types == [{"key": "living_room", "count": 3, "share": 1.0}]


async def test_authentication_and_roles(api: Api) -> None:
    async with api.client(role=None) as anonymous:
        response = await anonymous.get("/datasets")
        assert response.status_code == 401
        assert "missing credentials" in response.json()["detail"]
        bad = await anonymous.get("/datasets", headers={"Authorization": "Bearer nonsense"})
        assert bad.status_code == 401
        expired = await anonymous.get(
            "/datasets", headers={"Authorization": f"Bearer {api.token('viewer', ttl_s=-10)}"}
        )
        assert expired.status_code == 401
        assert "expired" in expired.json()["detail"]
        assert (await anonymous.get("/health")).json() == {
            "ok": True,
            "status": "ok",
            "redis": "ok",
            "postgres": "ok",
        }
        metrics = await anonymous.get("/metrics")
        assert "modomo_sse_clients" in metrics.text
    async with api.client(role="viewer") as viewer:
        assert (await viewer.get("/datasets")).status_code == 200
        denied = await viewer.post("/datasets", json={"name": "x"})
        assert denied.status_code == 403
        assert "needs the reviewer role" in denied.json()["detail"]
    conn = await db.connect(api.settings)
    try:
        key = await create_api_key(conn, "reviewer", "ci")
    finally:
        await conn.close()
    async with httpx.AsyncClient(base_url=api.url, headers={"X-API-Key": key}) as integration:
        assert (await integration.post("/datasets", json={"name": "via key"})).status_code == 201
    wrong = key[:-3] + "abc"
    async with httpx.AsyncClient(base_url=api.url, headers={"X-API-Key": wrong}) as stranger:
        assert (await stranger.get("/datasets")).status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "text"),
    [
        ("POST", "/datasets", b"{not json", 400, ""),
        ("POST", "/datasets", {"name": 5}, 400, "name"),
        ("POST", "/datasets", {"name": ""}, 400, "name"),
        ("POST", "/datasets", {"name": "a", "colour": "red"}, 400, "colour"),
        ("POST", "/datasets", {"name": "x" * 2_000_000}, 413, ""),
        ("GET", "/datasets/nope", None, 404, "no dataset with id 'nope'"),
        ("GET", "/datasets?cursor=%%%", None, 400, "cursor"),
        ("GET", "/datasets?cursor=abc", None, 400, "cursor"),
        ("GET", "/datasets/d/scenes?category=spaceship", None, 400, "category"),
        ("GET", "/datasets/d/review-queue?cursor=1~2~3~x", None, 400, "cursor"),
        ("GET", "/datasets?limit=0", None, 400, "limit"),
        ("POST", "/datasets/nope/presign", {"files": []}, 400, "files"),
        ("POST", "/jobs", {"dataset_id": "nope"}, 404, "no dataset"),
        ("POST", "/jobs", {"dataset_id": "x", "resize_max_px": 99999}, 400, "resize_max_px"),
        ("POST", "/jobs", {"dataset_id": "x", "stages": {"depht": True}}, 400, "depht"),
        ("POST", "/jobs", {"dataset_id": "x", "stages": {"depth": 0}}, 400, "stages.depth"),
        ("POST", "/jobs", {"dataset_id": "x", "resize_max_px": "512"}, 400, "resize_max_px"),
        ("GET", "/jobs/nope", None, 404, "no job"),
        ("GET", "/jobs/nope/events", None, 404, "no job"),
        ("GET", "/scenes/nope", None, 404, "no scene"),
        ("GET", "/objects/nope", None, 404, "no object"),
        ("PATCH", "/objects/nope", {"category": "sofa"}, 404, "no object"),
        ("PATCH", "/objects/nope", {"bbox": [0, 0, 2, 1]}, 400, "bbox"),
        ("PATCH", "/objects/nope", {"category": "spaceship"}, 400, "category"),
        ("PATCH", "/objects/nope", {"materials": ["unobtainium"]}, 400, "materials"),
        ("POST", "/datasets", {"name": "a\u0000b"}, 400, "name"),
        ("POST", "/jobs/nope/events/ticket", {}, 404, "no job"),
        ("POST", "/jobs/nope/events/ticket", {"after": "x"}, 400, "after"),
        ("POST", "/reviews", {"scene_id": "nope", "verdict": "approve"}, 404, "no scene"),
        ("POST", "/reviews", {"scene_id": "s", "verdict": "maybe"}, 400, "verdict"),
        ("GET", "/stats/distribution/weather", None, 404, "unknown distribution"),
    ],
)
async def test_bad_input_is_a_clear_4xx(
    api: Api, method: str, path: str, body: Any, status: int, text: str
) -> None:
    async with api.client() as client:
        if isinstance(body, bytes):
            response = await client.request(
                method, path, content=body, headers={"Content-Type": "application/json"}
            )
        else:
            response = await client.request(method, path, json=body)
    assert response.status_code == status, response.text
    assert text in response.text


async def test_bad_last_event_id_and_health_when_redis_is_down(
    api: Api, db_settings: Settings, s3_endpoint: str
) -> None:
    dataset_id, _ = await dataset_with_scenes(api, 1)
    async with api.client() as client:
        job_id = (await client.post("/jobs", json={"dataset_id": dataset_id})).json()["job_id"]
        bad = await client.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": "abc"})
        assert bad.status_code == 400
        assert bad.json()["extra"][0]["key"] == "last_event_id"
    broken = msgspec.structs.replace(db_settings, redis_url="redis://127.0.0.1:1/0")
    async with running_api(broken, s3_endpoint) as down, down.client(role=None) as client:
        health = await client.get("/health")
    assert health.status_code == 503
    assert health.json()["ok"] is False
    assert health.json()["redis"].startswith("down")
    assert health.json()["postgres"] == "ok"


WRITES = [
    ("POST", "/datasets"),
    ("POST", "/datasets/d/presign"),
    ("POST", "/datasets/d/register-scenes"),
    ("POST", "/jobs"),
    ("PATCH", "/objects/o"),
    ("POST", "/reviews"),
]
READS = [
    ("GET", "/datasets"),
    ("GET", "/datasets/d"),
    ("GET", "/datasets/d/scenes"),
    ("GET", "/jobs"),
    ("GET", "/jobs/j"),
    ("GET", "/jobs/j/events"),
    ("GET", "/scenes/s"),
    ("GET", "/objects/o"),
    ("GET", "/reviews?scene_id=s"),
    ("GET", "/stats/overview"),
    ("GET", "/stats/distribution/category"),
]


async def test_every_route_needs_credentials_and_writes_need_the_reviewer_role(api: Api) -> None:
    async with api.client(role=None) as anonymous, api.client(role="viewer") as viewer:
        for method, path in WRITES + READS:
            response = await anonymous.request(method, path, json={})
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["detail"]
        for method, path in WRITES:
            response = await viewer.request(method, path, json={})
            assert response.status_code == 403, (method, path, response.text)
            assert "needs the reviewer role" in response.json()["detail"]
        for method, path in READS:
            response = await viewer.request(method, path)
            assert response.status_code in (200, 404), (method, path, response.text)


async def test_a_write_not_yet_projected_is_accepted_with_its_event_id(
    redis: Redis, db_settings: Settings
) -> None:
    from litestar.testing import AsyncTestClient

    from modomo.api.app import create_app
    from modomo.api.auth import issue_token
    from modomo.domain.events import DatasetCreated
    from tests.integration.support import log_events

    # No projector runs here, so the write can only be recorded, not yet shown.
    settings = msgspec.structs.replace(db_settings, write_wait_ms=100, jwt_secret="w" * 32)
    token = issue_token(settings.jwt_secret, "alice", "reviewer")
    async with AsyncTestClient(create_app(settings)) as client:
        response = await client.post(
            "/datasets", json={"name": "later"}, headers={"Authorization": f"Bearer {token}"}
        )
    assert response.status_code == 202
    body = response.json()
    [event] = [e for e in await log_events(redis, settings) if isinstance(e, DatasetCreated)]
    assert body["event_id"] == event.event_id
    assert body["log_id"]
