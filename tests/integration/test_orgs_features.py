"""What an organisation has of its own, over real HTTP: who am I, quotas (429 with
Retry-After), API keys made and revoked by its admin or by ``modomo apikey --org``, and
the audit trail, newest first."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import jwt
import pytest

from modomo.settings import Settings
from tests.integration.api_support import PNG, Api, dataset_with_scenes, post_upload, running_api
from tests.integration.support import settings_env, wait_for
from tests.integration.test_connection_and_cli import _cli

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(db_settings: Settings, s3_endpoint: str) -> AsyncIterator[Api]:
    async with running_api(db_settings, s3_endpoint) as running_:
        yield running_


async def test_me_names_the_callers_org_and_a_token_without_one_is_in_the_default(
    api: Api,
) -> None:
    async with api.client("viewer") as old, api.client("reviewer", org="acme") as acme:
        assert (await old.get("/me")).json() == {
            "subject": "alice",
            "role": "viewer",
            "org": "default",
            "via": "jwt",
        }
        assert (await acme.get("/me")).json()["org"] == "acme"
    now = int(time.time())
    async with httpx.AsyncClient(base_url=api.url) as client:
        for bad in ("Acme Corp", "", "a" * 64, "x\u0000y", 7, "-lead"):
            token = jwt.encode(
                {"sub": "m", "role": "admin", "org": bad, "exp": now + 60},
                api.settings.jwt_secret,
                algorithm="HS256",
            )
            refused = await client.get("/me", headers={"Authorization": f"Bearer {token}"})
            assert refused.status_code == 401, bad
            assert "org" in refused.json()["detail"]


async def test_a_job_over_the_orgs_daily_quota_answers_429_with_retry_after(api: Api) -> None:
    dataset_id, _ = await dataset_with_scenes(api, 2, org="acme")
    other, _ = await dataset_with_scenes(api, 2, org="globex")
    async with (
        api.client("admin", org="acme") as admin,
        api.client("reviewer", org="acme") as reviewer,
        api.client("admin", org="globex") as globex,
    ):
        low = await reviewer.put("/orgs/me/quota", json={"scenes_per_day": 3})
        assert low.status_code == 403  # an admin's decision
        bad = await admin.put("/orgs/me/quota", json={"scenes_per_day": -1})
        assert bad.status_code == 400
        assert "scenes_per_day" in bad.text
        quota = await admin.put("/orgs/me/quota", json={"scenes_per_day": 3})
        assert quota.status_code == 200, quota.text
        assert quota.json()["scenes_per_day"] == 3
        first = await reviewer.post("/jobs", json={"dataset_id": dataset_id})
        assert first.status_code == 201, first.text
        over = await reviewer.post("/jobs", json={"dataset_id": dataset_id})
        assert over.status_code == 429, over.text
        retry = int(over.headers["Retry-After"])
        assert 0 < retry <= 86_400
        assert "quota of 3 scenes per day" in over.json()["detail"]
        # One scene still fits; the refused job took nothing from the day's count.
        one = await reviewer.post(
            "/jobs", json={"dataset_id": dataset_id, "scene_ids": [first.json()["job_id"]]}
        )
        assert one.status_code == 404  # not a scene: refused before counting
        used = (await reviewer.get("/orgs/me/quota")).json()
        assert (used["scenes_per_day"], used["used_today"]) == (3, 2)
        # Another organisation's quota is its own.
        for _ in range(3):
            assert (await globex.post("/jobs", json={"dataset_id": other})).status_code == 201
        assert (await globex.get("/orgs/me/quota")).json()["scenes_per_day"] == 0
        # Lifting the limit lets the job through.
        await admin.put("/orgs/me/quota", json={"scenes_per_day": 0})
        assert (await reviewer.post("/jobs", json={"dataset_id": dataset_id})).status_code == 201


async def test_an_org_admin_manages_its_own_keys_only(api: Api) -> None:
    async with (
        api.client("admin", org="acme") as acme,
        api.client("admin", org="globex") as globex,
    ):
        made = await acme.post("/orgs/me/keys", json={"role": "reviewer", "name": "ci"})
        assert made.status_code == 201, made.text
        key, key_id = made.json()["key"], made.json()["key_id"]
        assert made.json()["org"] == "acme"
        async with httpx.AsyncClient(base_url=api.url, headers={"X-API-Key": key}) as by_key:
            me = (await by_key.get("/me")).json()
            assert (me["org"], me["role"], me["via"]) == ("acme", "reviewer", "api_key")
            assert (await by_key.get("/orgs/me/keys")).status_code == 403  # not an admin
            assert [k["key_id"] for k in (await acme.get("/orgs/me/keys")).json()] == [key_id]
            assert (await globex.get("/orgs/me/keys")).json() == []
            foreign = await globex.post(f"/orgs/me/keys/{key_id}/revoke")
            assert foreign.status_code == 404
            assert (await by_key.get("/me")).status_code == 200
            revoked = await acme.post(f"/orgs/me/keys/{key_id}/revoke")
            assert revoked.status_code == 200
            assert revoked.json()["revoked_at"] is not None
            assert (await by_key.get("/me")).status_code == 401


async def test_apikey_create_with_org_from_the_cli(api: Api) -> None:
    env = settings_env(api.settings)
    dataset_id, _ = await dataset_with_scenes(api, 1, org="acme")
    await dataset_with_scenes(api, 1)  # the default organisation's
    made = _cli("apikey", "create", "--role", "viewer", "--org", "acme", "--name", "ci", env=env)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    async with httpx.AsyncClient(base_url=api.url, headers={"X-API-Key": key}) as by_key:
        assert (await by_key.get("/me")).json()["org"] == "acme"
        listed = (await by_key.get("/datasets")).json()["items"]
        assert [d["dataset_id"] for d in listed] == [dataset_id]
    bad = _cli("apikey", "create", "--role", "viewer", "--org", "Not An Org", env=env)
    assert bad.returncode == 2
    assert "is not an organisation id" in bad.stderr
    quota = _cli("org", "quota", "--org", "acme", "--scenes-per-day", "5", env=env)
    assert quota.returncode == 0, quota.stderr
    async with api.client("viewer", org="acme") as acme:
        assert (await acme.get("/orgs/me/quota")).json()["scenes_per_day"] == 5
    revoked = _cli("apikey", "revoke", key.split("_")[1], env=env)
    assert revoked.returncode == 0, revoked.stderr

    async with api.client("admin", org="acme") as acme:

        async def audited() -> bool:
            items = (await acme.get("/audit")).json()["items"]
            return [i["type"] for i in items][:3] == [
                "api_key_revoked",
                "org_quota_set",
                "api_key_created",
            ]

        await wait_for(audited, what="the CLI's changes in the audit trail")


async def test_the_audit_trail_lists_who_changed_what_newest_first(api: Api) -> None:
    dataset_id, scene_ids = await dataset_with_scenes(api, 1, org="acme")
    other, _ = await dataset_with_scenes(api, 1, org="acme")
    async with (
        api.client("admin", org="acme") as admin,
        api.client("admin", org="globex") as globex,
    ):
        job = await admin.post("/jobs", json={"dataset_id": dataset_id})
        assert job.status_code == 201, job.text
        review = await admin.post("/reviews", json={"scene_id": scene_ids[0], "verdict": "reject"})
        assert review.status_code == 201, review.text
        await admin.post(f"/datasets/{other}/exports", json={"format": "coco"})

        async def archived() -> bool:
            page = (await admin.get("/audit", params={"dataset_id": dataset_id})).json()
            return len(page["items"]) == 4

        await wait_for(archived, what="the archive")
        page = (await admin.get("/audit", params={"dataset_id": dataset_id})).json()
        assert [i["type"] for i in page["items"]] == [
            "review_submitted",
            "job_created",
            "scenes_registered",
            "dataset_created",
        ]
        times = [i["at"] for i in page["items"]]
        assert times == sorted(times, reverse=True)
        assert page["items"][0]["actor"] == "alice"
        assert page["items"][0]["changes"]["verdict"] == "reject"
        assert page["items"][1]["target"] == job.json()["job_id"]
        assert page["items"][2]["changes"] == {"scenes": 1}
        # Paged, newest first, by the log position.
        first = (await admin.get("/audit", params={"dataset_id": dataset_id, "limit": 3})).json()
        rest = (
            await admin.get(
                "/audit", params={"dataset_id": dataset_id, "cursor": first["next_cursor"]}
            )
        ).json()
        assert [i["log_id"] for i in first["items"] + rest["items"]] == [
            i["log_id"] for i in page["items"]
        ]
        assert rest["next_cursor"] is None
        everything = (await admin.get("/audit")).json()["items"]
        assert {i["dataset_id"] for i in everything} == {dataset_id, other}
        assert (await globex.get("/audit")).json()["items"] == []
        assert (await globex.get("/audit", params={"dataset_id": dataset_id})).json()["items"] == []
        async with api.client("viewer", org="acme") as viewer:
            assert (await viewer.get("/audit")).status_code == 403


async def test_an_upload_presigned_for_another_org_cannot_be_registered(api: Api) -> None:
    mine, _ = await dataset_with_scenes(api, 1, org="acme")
    theirs, _ = await dataset_with_scenes(api, 1, org="globex")
    async with (
        api.client("reviewer", org="acme") as acme,
        api.client("reviewer", org="globex") as globex,
    ):
        files = [{"filename": "r.png", "content_type": "image/png", "size_bytes": len(PNG)}]
        presigned = await globex.post(f"/datasets/{theirs}/presign", json={"files": files})
        [upload] = presigned.json()["uploads"]
        async with httpx.AsyncClient() as plain:
            assert (await post_upload(plain, upload, PNG)).status_code == 204
        claim = {"scenes": [{"scene_id": upload["scene_id"]}]}
        taken = await acme.post(f"/datasets/{mine}/register-scenes", json=claim)
        assert taken.status_code == 409, taken.text
        assert "not uploaded" in taken.json()["detail"]
        registered = await globex.post(f"/datasets/{theirs}/register-scenes", json=claim)
        assert registered.json()["registered"] == [upload["scene_id"]]
