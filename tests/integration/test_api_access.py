"""Access fails closed, over real HTTP: every route of the app's own route table answers
401 without credentials and 403 below its role; forged, unknown-role and revoked
credentials are refused; SSE tickets are short-lived and scoped to one job's stream."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import jwt
import pytest
from litestar import Litestar, get
from litestar.routes import HTTPRoute
from litestar.testing import TestClient

from modomo.api.app import create_app
from modomo.api.auth import (
    ROLES,
    Caller,
    UndeclaredAccess,
    check_declared,
    create_api_key,
    declared_role,
    issue_ticket,
    role_guard,
)
from modomo.projections import db
from modomo.settings import Settings
from tests.integration.api_support import Api, running_api
from tests.integration.api_support import dataset_with_scenes as _dataset_with_scenes

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(db_settings: Settings, s3_endpoint: str) -> AsyncIterator[Api]:
    async with running_api(db_settings, s3_endpoint) as running_:
        yield running_


def _routes(settings: Settings) -> list[tuple[str, str, str]]:
    """(method, concrete path, declared access) for every route the app serves."""
    found = []
    for route in create_app(settings).routes:
        if not isinstance(route, HTTPRoute):
            continue
        path = re.sub(r"\{(\w+):\w+\}", lambda m: f"x{m.group(1)}", route.path)
        for handler in route.route_handlers:
            access = declared_role(handler)
            assert access is not None, f"{route.path} declares no access"
            found.extend((m, path, access) for m in sorted(handler.http_methods) if m != "OPTIONS")
    return found


async def test_the_route_table_fails_closed(api: Api) -> None:
    routes = _routes(api.settings)
    assert len(routes) >= 20
    assert {access for _, _, access in routes} >= {"viewer", "reviewer", "public"}
    async with api.client(role=None) as anonymous:
        for method, path, access in routes:
            response = await anonymous.request(method, path)
            if access == "public":
                assert response.status_code != 401, (method, path)
                continue
            assert response.status_code == 401, (method, path, response.text)
            assert response.json()["detail"]
    for low in ROLES[:-1]:
        async with api.client(role=low) as caller:
            for method, path, access in routes:
                if access not in ROLES or ROLES.index(access) <= ROLES.index(low):
                    continue
                response = await caller.request(method, path, json={})
                assert response.status_code == 403, (low, method, path, response.text)
                assert f"needs the {access} role" in response.json()["detail"]


def test_an_app_with_an_undeclared_route_refuses_to_start() -> None:
    @get("/forgotten", sync_to_thread=False)
    def forgotten() -> str:
        return "data"

    @get("/both", opt={"public": True, "role": "viewer"}, sync_to_thread=False)
    def both() -> str:
        return "data"

    app = Litestar(route_handlers=[forgotten, both], guards=[role_guard])
    with pytest.raises(UndeclaredAccess, match=r"GET /forgotten.*GET /both"):
        check_declared(app)
    # Even served without the check, the guard refuses what declares nothing.
    with TestClient(app) as client:
        assert client.get("/forgotten").status_code == 403
        assert client.get("/both").status_code == 403


async def test_forged_expired_unknown_role_and_revoked_credentials_are_refused(api: Api) -> None:
    now = int(time.time())
    claims = {"sub": "mallory", "role": "admin", "exp": now + 600}
    forged = {
        "another secret": jwt.encode(claims, "x" * 40, algorithm="HS256"),
        "alg none": jwt.encode(claims, None, algorithm="none"),
        "unknown role": jwt.encode(
            {**claims, "role": "superuser"}, api.settings.jwt_secret, algorithm="HS256"
        ),
        "no expiry": jwt.encode(
            {"sub": "m", "role": "admin"}, api.settings.jwt_secret, algorithm="HS256"
        ),
        "expired": jwt.encode({**claims, "exp": now - 5}, api.settings.jwt_secret, "HS256"),
    }
    conn = await db.connect(api.settings)
    try:
        key = await create_api_key(conn, "admin", "to revoke")
        await conn.execute("UPDATE api_keys SET revoked_at = now() WHERE key_id = $1", key[4:16])
    finally:
        await conn.close()
    async with httpx.AsyncClient(base_url=api.url) as client:
        for what, token in forged.items():
            response = await client.get("/datasets", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 401, what
        revoked = await client.get("/datasets", headers={"X-API-Key": key})
        assert revoked.status_code == 401
        assert "revoked" in revoked.json()["detail"]
        as_bearer = await client.get("/datasets", headers={"Authorization": f"Bearer {key}"})
        assert as_bearer.status_code == 401
        assert (
            "role 'superuser'"
            in (
                await client.get(
                    "/datasets", headers={"Authorization": f"Bearer {forged['unknown role']}"}
                )
            ).json()["detail"]
        )


async def test_an_sse_ticket_opens_one_jobs_stream_and_nothing_else(api: Api) -> None:
    dataset_id, _ = await _dataset_with_scenes(api, 1)
    async with api.client() as client:
        job_a = (await client.post("/jobs", json={"dataset_id": dataset_id})).json()["job_id"]
        job_b = (await client.post("/jobs", json={"dataset_id": dataset_id})).json()["job_id"]
        issued = await client.post(f"/jobs/{job_a}/events/ticket", json={})
        assert issued.status_code == 201, issued.text
        ticket = issued.json()["ticket"]
        assert issued.json()["events_url"] == f"/jobs/{job_a}/events?ticket={ticket}"
        assert (await client.post("/jobs/nope/events/ticket", json={})).status_code == 404
    bearer = api.token("viewer")
    expired, _ = issue_ticket(
        api.settings.jwt_secret, Caller("alice", "viewer", "jwt"), job_a, ttl_s=-5
    )
    async with httpx.AsyncClient(base_url=api.url, timeout=10) as browser:
        async with browser.stream("GET", f"/jobs/{job_a}/events?ticket={ticket}") as stream:
            assert stream.status_code == 200
            lines = stream.aiter_lines()
            assert (await anext(lines)).startswith("id: ")
            assert (await anext(lines)) == "event: job_created"
        refused = {
            "another job": f"/jobs/{job_b}/events?ticket={ticket}",
            "expired": f"/jobs/{job_a}/events?ticket={expired}",
            "a bearer token as a ticket": f"/jobs/{job_a}/events?ticket={bearer}",
            "a ticket on another route": f"/jobs/{job_a}?ticket={ticket}",
        }
        for what, url in refused.items():
            response = await browser.get(url)
            assert response.status_code == 401, what
        as_bearer = await browser.get(
            f"/jobs/{job_a}", headers={"Authorization": f"Bearer {ticket}"}
        )
        assert as_bearer.status_code == 401


async def test_the_app_is_served_with_its_own_routes_and_assets(
    db_settings: Settings, s3_endpoint: str, tmp_path: Path
) -> None:
    import msgspec

    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><div id=root></div>")
    (tmp_path / "assets" / "index-abc.js").write_text("console.log(1)")
    (tmp_path.parent / "secret.txt").write_text("not for the web")
    settings = msgspec.structs.replace(db_settings, web_dir=str(tmp_path))
    async with running_api(settings, s3_endpoint) as api, api.client(role=None) as anonymous:
        root = await anonymous.get("/")
        assert (root.status_code, root.headers["location"]) == (302, "/app/")
        for path in ("/app/", "/app/scenes/abc", "/app/datasets/d/review"):
            page = await anonymous.get(path)
            assert page.status_code == 200, path
            assert page.headers["content-type"].startswith("text/html")
            assert page.headers["cache-control"] == "no-cache"
        asset = await anonymous.get("/app/assets/index-abc.js")
        assert asset.text == "console.log(1)"
        assert "immutable" in asset.headers["cache-control"]
        assert (await anonymous.get("/app/assets/missing.js")).status_code == 404
        escape = await anonymous.get("/app/%2e%2e/secret.txt")
        assert "not for the web" not in escape.text
        preflight = await anonymous.options(
            "/datasets",
            headers={
                "Origin": "http://localhost:5173",
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization",
            },
        )
        assert preflight.headers["access-control-allow-origin"] == "http://localhost:5173"
        stranger = await anonymous.options(
            "/datasets",
            headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in stranger.headers
    empty = tmp_path / "empty"
    empty.mkdir()
    unbuilt = msgspec.structs.replace(db_settings, web_dir=str(empty))
    async with running_api(unbuilt, s3_endpoint) as api, api.client(role=None) as anonymous:
        missing = await anonymous.get("/app/")
        assert missing.status_code == 503
        assert "not built" in missing.text
