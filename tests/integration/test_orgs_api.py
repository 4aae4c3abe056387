"""Organisations over real HTTP: one organisation's credentials reach nothing of another's.

The cross-tenant walk goes through the app's own route table, so a route added later is
walked too: every route with an id in its path, called by another organisation's admin
with this organisation's ids, answers 404 and changes nothing (the read models, the API
keys, the quotas and the log are compared before and after). It runs twice: with the
query layer's filters alone (the API reading as the tables' owner), and with row-level
security as well (the API switching to a non-owner role in every transaction).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from litestar.routes import HTTPRoute
from redis.asyncio import Redis

from modomo.api.app import create_app
from modomo.api.auth import declared_role
from modomo.domain.events import EvaluationRecorded
from modomo.projections.registry import PROJECTORS, READ_TABLES
from modomo.settings import Settings
from modomo.streams.keys import Keys
from modomo.streams.log import EventLog
from tests.integration.api_support import Api, dataset_with_scenes, pipeline_handler, running_api
from tests.integration.org_support import grant_reader
from tests.integration.projection_support import caught_up
from tests.integration.support import running, wait_for

pytestmark = pytest.mark.integration


def bodies(theirs: dict[str, str]) -> dict[tuple[str, str], Any]:
    """Valid bodies, so that a 404 is about the id and never a 400 about the body."""
    return {
        ("POST", "/datasets/{dataset_id:str}/presign"): {
            "files": [{"filename": "x.png", "content_type": "image/png", "size_bytes": 10}]
        },
        ("POST", "/datasets/{dataset_id:str}/register-scenes"): {
            "scenes": [{"scene_id": theirs["scene_id"]}]
        },
        ("POST", "/datasets/{dataset_id:str}/exports"): {"format": "coco"},
        ("POST", "/jobs/{job_id:str}/events/ticket"): {},
        ("PATCH", "/objects/{object_id:str}"): {"category": "armchair"},
    }


@pytest.fixture(params=["filters", "filters+rls"])
async def api(
    request: pytest.FixtureRequest, db_settings: Settings, s3_endpoint: str
) -> AsyncIterator[Api]:
    settings = db_settings
    if request.param == "filters+rls":
        settings = msgspec.structs.replace(settings, db_api_role=await grant_reader(settings))
    async with running_api(settings, s3_endpoint) as running_:
        yield running_


async def _ok(response: httpx.Response, *codes: int) -> Any:
    assert response.status_code in (codes or (200, 201)), response.text
    return response.json()


async def build_world(api: Api, redis: Redis, org: str) -> dict[str, str]:
    """A dataset of ``org`` with a finished job, a corrected object, a review, an export,
    an evaluation and an API key; returns their ids by path parameter name."""
    dataset_id, scene_ids = await dataset_with_scenes(api, 2, org=org)
    async with api.client("admin", org=org) as client:
        job_id = (await _ok(await client.post("/jobs", json={"dataset_id": dataset_id})))["job_id"]
        async with running(redis, api.settings, pipeline_handler):

            async def done() -> bool:
                job = await client.get(f"/jobs/{job_id}")
                return bool(job.json()["status"] == "succeeded")

            await wait_for(done, within=60, what=f"the job of {org}")
        scene = await _ok(await client.get(f"/scenes/{scene_ids[0]}"))
        object_id = scene["objects"][0]["object_id"]
        await _ok(await client.patch(f"/objects/{object_id}", json={"category": "armchair"}))
        review = await _ok(
            await client.post(
                "/reviews",
                json={"scene_id": scene_ids[0], "object_id": object_id, "verdict": "approve"},
            )
        )
        export = await _ok(
            await client.post(f"/datasets/{dataset_id}/exports", json={"format": "coco"}), 202
        )
        key = await _ok(await client.post("/orgs/me/keys", json={"role": "viewer", "name": "ci"}))
        evaluation = EvaluationRecorded(
            evaluation_id=f"{org}-eval", golden="g", golden_sha256="ab", job_id=job_id, org=org
        )
        await EventLog(redis, Keys(api.settings.redis_prefix)).append([evaluation])

        async def evaluated() -> bool:
            return (await client.get(f"/evaluations/{evaluation.evaluation_id}")).status_code == 200

        await wait_for(evaluated, what="the evaluation")
    return {
        "dataset_id": dataset_id,
        "scene_id": scene_ids[0],
        "object_id": object_id,
        "job_id": job_id,
        "review_id": review["review_id"],
        "export_id": export["export_id"],
        "evaluation_id": evaluation.evaluation_id,
        "key_id": key["key_id"],
    }


async def snapshot(api: Api, redis: Redis) -> dict[str, str]:
    """A digest of every read model, the API keys, the quotas and the log's length, once
    every projector has applied the whole log."""
    keys = Keys(api.settings.redis_prefix)
    [(last, _)] = await redis.xrevrange(keys.events, count=1)

    async def settled() -> bool:
        return await caught_up(api.settings, list(PROJECTORS), last.decode())

    await wait_for(settled, what="the projectors")
    conn = await asyncpg.connect(api.settings.database_url)
    try:
        digests = {"log length": str(await redis.xlen(keys.events))}
        tables = [(api.settings.db_schema, t) for t in READ_TABLES] + [
            (api.settings.db_log_schema, t) for t in ("api_keys", "org_quotas", "event_log")
        ]
        for schema, table in tables:
            digests[table] = await conn.fetchval(
                "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                f'FROM "{schema}"."{table}" t'
            )
    finally:
        await conn.close()
    return digests


def id_routes(settings: Settings) -> list[tuple[str, str, str, list[str]]]:
    """(method, route path, concrete-path template, its path parameters) of every route
    with a path parameter, as the app's route table has them."""
    found = []
    for route in create_app(settings).routes:
        if not isinstance(route, HTTPRoute):
            continue
        params = re.findall(r"\{(\w+):\w+\}", route.path)
        if not params:
            continue
        for handler in route.route_handlers:
            for method in sorted(handler.http_methods - {"OPTIONS"}):
                found.append((method, route.path, str(declared_role(handler)), params))
    return found


async def test_another_orgs_ids_answer_404_and_change_nothing(api: Api, redis: Redis) -> None:
    theirs = await build_world(api, redis, "globex")
    mine = await build_world(api, redis, "acme")
    before = await snapshot(api, redis)
    walked: set[str] = set()
    async with api.client("admin", org="acme") as acme:
        for method, path, access, params in id_routes(api.settings):
            if access == "public" or params == ["kind"]:
                continue  # public: /media, the app's files, the schema; kind: not an id
            concrete = re.sub(r"\{(\w+):\w+\}", lambda m: theirs[m.group(1)], path)
            body = bodies(theirs).get((method, path))
            response = await acme.request(
                method, concrete, **({"json": body} if body is not None else {})
            )
            assert response.status_code == 404, (method, path, response.text)
            assert not any(
                i in response.text for i in theirs.values() if i not in concrete + str(body)
            )
            walked.update(params)
        # Ids in bodies and queries are the other organisation's too.
        assert (
            await acme.post("/jobs", json={"dataset_id": theirs["dataset_id"]})
        ).status_code == 404
        review = {"scene_id": theirs["scene_id"], "verdict": "approve"}
        assert (await acme.post("/reviews", json=review)).status_code == 404
        register = {"scenes": [{"scene_id": theirs["scene_id"]}]}
        taken = await acme.post(f"/datasets/{mine['dataset_id']}/register-scenes", json=register)
        assert taken.status_code == 409, taken.text  # never registered again as acme's
    assert walked >= {
        "dataset_id",
        "scene_id",
        "object_id",
        "job_id",
        "export_id",
        "evaluation_id",
        "key_id",
    }
    assert await snapshot(api, redis) == before

    # Lists and searches: the caller's own rows, none of the other organisation's.
    queries = {
        "/datasets": {},
        "/jobs": {},
        "/exports": {},
        "/evaluations": {},
        "/stats/overview": {},
        "/audit": {},
        "/orgs/me/keys": {},
        "/me": {},
        "/orgs/me/quota": {},
        "/taxonomies": {},
        "/reviews": {"scene_id": theirs["scene_id"]},
        "/stats/distribution/category": {"dataset_id": theirs["dataset_id"]},
    }
    async with api.client("admin", org="acme") as acme:
        for path, params in queries.items():
            response = await acme.get(path, params=params)
            assert response.status_code == 200, (path, response.text)
            assert not any(i in response.text for i in theirs.values()), path
        for path, params in {
            "/jobs": {"dataset_id": theirs["dataset_id"]},
            "/exports": {"dataset_id": theirs["dataset_id"]},
            "/evaluations": {"job_id": theirs["job_id"]},
            "/audit": {"dataset_id": theirs["dataset_id"]},
        }.items():
            assert (await acme.get(path, params=params)).json()["items"] == [], path
        listed = (await acme.get("/datasets")).json()["items"]
        assert [d["dataset_id"] for d in listed] == [mine["dataset_id"]]
        overview = (await acme.get("/stats/overview")).json()
        assert (overview["datasets"], overview["scenes"], overview["reviews"]) == (1, 2, 1)
        # The other organisation's image, unsigned, is refused like any unsigned link.
        media = await acme.get(f"/media/scenes/{theirs['scene_id']}", params={"exp": 1, "sig": "x"})
        assert media.status_code == 403
    # The other organisation still sees all of its own.
    async with api.client("viewer", org="globex") as globex:
        assert (await globex.get(f"/scenes/{theirs['scene_id']}")).status_code == 200
        assert (await globex.get(f"/jobs/{theirs['job_id']}")).status_code == 200
