"""Input PostgreSQL cannot store never enters the log: every text field of every body,
path and query parameter, NUL and lone surrogates, huge and empty values."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis

from modomo.settings import Settings
from modomo.streams.keys import Keys
from tests.integration.api_support import Api, running_api

pytestmark = pytest.mark.integration

NUL = "a\u0000b"
FILE = {"filename": "room.jpg", "content_type": "image/jpeg", "size_bytes": 10}


def _bodies(bad: str) -> list[tuple[str, str, Any, str]]:
    """(method, path, JSON body, the field the 400 must name) with ``bad`` in that field."""
    return [
        ("POST", "/datasets", {"name": bad}, "name"),
        ("POST", "/datasets", {"name": "ok", "description": bad}, "description"),
        ("POST", "/datasets/d/presign", {"files": [FILE, {**FILE, "filename": bad}]}, "filename"),
        (
            "POST",
            "/datasets/d/register-scenes",
            {"scenes": [{"scene_id": "s1", "filename": bad}]},
            "filename",
        ),
        ("POST", "/datasets/d/register-scenes", {"scenes": [{"scene_id": bad}]}, "scene_id"),
        ("POST", "/jobs", {"dataset_id": bad}, "dataset_id"),
        ("POST", "/jobs", {"dataset_id": "d", "scene_ids": ["s", bad]}, "scene_ids"),
        ("PATCH", "/objects/o", {"attrs": {"colour": bad}}, "colour"),
        ("PATCH", "/objects/o", {"attrs": {bad: "red"}}, "attrs"),
        ("PATCH", "/objects/o", {"category": bad}, "category"),
        ("PATCH", "/objects/o", {"materials": ["wood", bad]}, "materials"),
        ("POST", "/reviews", {"scene_id": "s", "verdict": "fix", "note": bad}, "note"),
        ("POST", "/reviews", {"scene_id": "s", "verdict": "fix", "object_id": bad}, "object_id"),
    ]


@pytest.fixture
async def api(db_settings: Settings, s3_endpoint: str) -> AsyncIterator[Api]:
    async with running_api(db_settings, s3_endpoint) as running_:
        yield running_


async def _log_length(redis: Redis, settings: Settings) -> int:
    return int(await redis.xlen(Keys(settings.redis_prefix).events))


async def test_nul_in_any_body_field_is_a_400_naming_it_and_nothing_is_appended(
    api: Api, redis: Redis
) -> None:
    before = await _log_length(redis, api.settings)
    async with api.client() as client:
        for method, path, body, field in _bodies(NUL):
            response = await client.request(method, path, json=body)
            assert response.status_code == 400, (path, field, response.text)
            assert field in response.text, (path, field, response.text)
        # The same requests with clean text get past validation (to a 201, 404 or 400 of
        # another kind): the check refuses exactly the bad text.
        for method, path, body, field in _bodies("ab"):
            response = await client.request(method, path, json=body)
            assert "NUL" not in response.text, (path, field, response.text)
    assert await _log_length(redis, api.settings) == before + 2  # the two clean datasets


async def test_lone_surrogates_in_bodies_are_refused(api: Api, redis: Redis) -> None:
    before = await _log_length(redis, api.settings)
    async with api.client() as client:
        for raw, field in (
            (b'{"name": "a\\ud800b"}', "name"),
            (b'{"name": "ok", "description": "\\udfff"}', "description"),
        ):
            response = await client.post(
                "/datasets", content=raw, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 400, response.text
            assert f"{field}: contains a lone surrogate" in response.text, response.text
        attrs = await client.patch(
            "/objects/o",
            content=b'{"attrs": {"a\\udc00": "x"}}',
            headers={"Content-Type": "application/json"},
        )
        assert attrs.status_code == 400
        assert "(key): contains a lone surrogate" in attrs.text, attrs.text
        # A proper pair is one ordinary character.
        fine = await client.post("/datasets", json={"name": "sofa \U0001f6cb"})
        assert fine.status_code in (201, 202), fine.text
    assert await _log_length(redis, api.settings) == before + 1


BAD_PARAMETERS = [
    ("/datasets/a%00b", "dataset_id"),
    ("/datasets/x/scenes?status=a%00b", "status"),
    ("/datasets?cursor=%00", "cursor"),
    ("/reviews?scene_id=s%00", "scene_id"),
    ("/scenes/" + "x" * 1001, "scene_id"),
    ("/jobs?dataset_id=" + "y" * 1001, "dataset_id"),
]

OVER_LIMITS = [
    ("POST", "/datasets", {"name": "n" * 201}, "name"),
    ("POST", "/datasets", {"name": "ok", "description": "d" * 2001}, "description"),
    ("POST", "/datasets/d/presign", {"files": [{**FILE, "filename": ""}]}, "filename"),
    ("POST", "/datasets/d/presign", {"files": [{**FILE, "filename": "f" * 256}]}, "filename"),
    ("PATCH", "/objects/o", {"attrs": {"": "red"}}, "attrs"),
    ("PATCH", "/objects/o", {"attrs": {"colour": "r" * 2001}}, "attrs"),
    ("PATCH", "/objects/o", {"attrs": {"k" * 65: 1}}, "attrs"),
    ("POST", "/reviews", {"scene_id": "s", "verdict": "fix", "note": "n" * 2001}, "note"),
]


async def test_bad_parameters_and_values_over_limits_are_a_400_naming_them(
    api: Api, redis: Redis
) -> None:
    before = await _log_length(redis, api.settings)
    async with api.client() as client:
        for path, name in BAD_PARAMETERS:
            response = await client.get(path)
            assert response.status_code == 400, (path, response.text)
            assert name in response.text, (path, response.text)
        for method, path, body, field in OVER_LIMITS:
            response = await client.request(method, path, json=body)
            assert response.status_code == 400, (path, field, response.text)
            assert field in response.text, (path, field, response.text)
    assert await _log_length(redis, api.settings) == before
