"""Least exposure and limits, against real processes and servers: start-up refusals of the
CLI, ``/metrics`` behind a network list or a token, per-caller write limits shared by two
API processes, and uploads the storage itself (SeaweedFS) bounds to their declared size."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import msgspec
import pytest

from modomo.api.auth import create_api_key
from modomo.demo.services import free_port
from modomo.projections import db
from modomo.projections import http as projector_http
from modomo.settings import Settings
from tests.integration.api_support import PNG, Api, running_api
from tests.integration.support import ROOT
from tests.uploads import post_upload

pytestmark = pytest.mark.integration

SECRET = "j" * 40
METRICS_TOKEN = "metrics-" + "m" * 32


def _modomo(command: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``modomo <command>`` in a process of its own, with only ``env`` of MODOMO_*."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MODOMO_")}
    return subprocess.run(
        [sys.executable, "-m", "modomo.cli", command],
        cwd=ROOT,
        env=clean | {"PYTHONPATH": str(ROOT), "MODOMO_LOG_FORMAT": "json"} | env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


@pytest.mark.parametrize(
    ("command", "env", "names"),
    [
        ("api", {"MODOMO_API_HOST": "0.0.0.0"}, "MODOMO_JWT_SECRET"),
        (
            "api",
            {"MODOMO_API_HOST": "0.0.0.0", "MODOMO_JWT_SECRET": SECRET},
            "MODOMO_S3_SECRET_ACCESS_KEY",
        ),
        (
            "api",
            {
                "MODOMO_API_HOST": "::",
                "MODOMO_JWT_SECRET": SECRET,
                "MODOMO_S3_SECRET_ACCESS_KEY": "bucket-secret",
                "MODOMO_REDIS_URL": "redis://10.0.0.5:6379/0",
            },
            "MODOMO_REDIS_URL",
        ),
        (
            "worker",
            {
                "MODOMO_WORKER_HTTP_HOST": "0.0.0.0",
                "MODOMO_JWT_SECRET": SECRET,
                "MODOMO_S3_SECRET_ACCESS_KEY": "bucket-secret",
                "MODOMO_REDIS_URL": "redis://:pw@10.0.0.5:6379/0",
            },
            "MODOMO_WORKER_TOKEN",
        ),
        (
            "project",
            {"MODOMO_METRICS_HOST": "0.0.0.0", "MODOMO_METRICS_PORT": "9100"},
            "MODOMO_JWT_SECRET",
        ),
        ("api", {"MODOMO_PRESIGN_TTL_S": "299"}, "MODOMO_PRESIGN_TTL_S"),
        ("worker", {"MODOMO_PRESIGN_TTL_S": "901"}, "MODOMO_PRESIGN_TTL_S"),
        ("api", {"MODOMO_METRICS_NETWORKS": "10.0.0.0/8,office"}, "MODOMO_METRICS_NETWORKS"),
    ],
)
def test_a_server_beyond_loopback_refuses_to_start_with_built_in_secrets(
    command: str, env: dict[str, str], names: str
) -> None:
    result = _modomo(command, **env)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"modomo: configuration error: {names}: " in result.stderr
    # The sentence says what to do, and a password never appears in it.
    assert "pw@" not in result.stderr


def test_the_guards_stay_quiet_on_loopback_and_pass_a_complete_configuration() -> None:
    assert Settings.from_env({}).exposed == ()
    complete = Settings.from_env(
        {
            "MODOMO_API_HOST": "0.0.0.0",
            "MODOMO_WORKER_HTTP_HOST": "0.0.0.0",
            "MODOMO_WORKER_TOKEN": "w" * 32,
            "MODOMO_JWT_SECRET": SECRET,
            "MODOMO_S3_SECRET_ACCESS_KEY": "bucket-secret",
            "MODOMO_REDIS_URL": "rediss://default:pw@redis.internal:6380/0",
        }
    )
    assert complete.exposed == ("MODOMO_API_HOST is 0.0.0.0", "MODOMO_WORKER_HTTP_HOST is 0.0.0.0")
    # A password as a query parameter (redis-py reads it there too) counts.
    assert Settings.from_env(
        {
            "MODOMO_API_HOST": "10.1.2.3",
            "MODOMO_JWT_SECRET": SECRET,
            "MODOMO_S3_SECRET_ACCESS_KEY": "bucket-secret",
            "MODOMO_REDIS_URL": "redis://redis.internal:6379/0?password=pw",
        }
    ).exposed == ("MODOMO_API_HOST is 10.1.2.3",)


@pytest.fixture
async def guarded(db_settings: Settings, s3_endpoint: str) -> AsyncIterator[Api]:
    settings = msgspec.structs.replace(
        db_settings,
        metrics_networks=("10.0.0.0/8",),
        metrics_token=METRICS_TOKEN,
        write_rate_limit=3,
        write_rate_window_s=60,
    )
    async with running_api(settings, s3_endpoint) as api:
        yield api


async def test_metrics_need_the_token_outside_the_listed_networks(guarded: Api) -> None:
    async with httpx.AsyncClient(base_url=guarded.url, timeout=30) as plain:
        bare = await plain.get("/metrics")
        assert bare.status_code == 401, bare.text
        assert "MODOMO_METRICS_TOKEN" in bare.json()["detail"]
        assert bare.headers["www-authenticate"] == "Bearer"
        # A client in a listed network needs no token. uvicorn takes the client's address
        # from X-Forwarded-For only when a proxy on this machine (FORWARDED_ALLOW_IPS,
        # 127.0.0.1) sends it, as here; from anywhere else the header is ignored.
        proxied = await plain.get("/metrics", headers={"X-Forwarded-For": "10.1.2.3"})
        assert proxied.status_code == 200
        outside = await plain.get("/metrics", headers={"X-Forwarded-For": "192.0.2.7"})
        assert outside.status_code == 401
        wrong = await plain.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        # A user's token is not the scraper's.
        user = await plain.get("/metrics", headers={"Authorization": f"Bearer {guarded.token()}"})
        assert user.status_code == 401
        scraped = await plain.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        assert scraped.status_code == 200
        assert "modomo_sse_clients" in scraped.text
        # The rest of the public surface is unchanged.
        assert (await plain.get("/health")).status_code in (200, 503)


async def test_writes_past_the_limit_are_429_with_retry_after_across_two_processes(
    guarded: Api, s3_endpoint: str
) -> None:
    # A second API process on the same Redis: the count is shared, not per process.
    async with (
        running_api(guarded.settings, s3_endpoint, projectors=False) as other,
        guarded.client() as alice_a,
        other.client() as alice_b,
        httpx.AsyncClient(
            base_url=other.url,
            headers={"Authorization": f"Bearer {other.token(subject='bob')}"},
            timeout=30,
        ) as bob,
    ):
        made = [
            await alice_a.post("/datasets", json={"name": "one"}),
            await alice_b.post("/datasets", json={"name": "two"}),
            await alice_a.post("/datasets", json={"name": "three"}),
        ]
        assert [r.status_code for r in made] == [201, 201, 201], [r.text for r in made]
        over = await alice_b.post("/datasets", json={"name": "four"})
        assert over.status_code == 429, over.text
        retry_after = int(over.headers["retry-after"])
        assert 1 <= retry_after <= 61
        assert "MODOMO_WRITE_RATE_LIMIT" in over.json()["detail"]
        # The refused write did nothing; reads are not limited; another caller still writes.
        listed = await alice_a.get("/datasets")
        assert listed.status_code == 200
        assert sorted(d["name"] for d in listed.json()["items"]) == ["one", "three", "two"]
        assert (await bob.post("/datasets", json={"name": "bob's"})).status_code == 201
        again = await alice_a.post("/datasets", json={"name": "five"})
        assert again.status_code == 429
        # An API key is a caller of its own, counted by its key id on every process.
        conn = await db.connect(guarded.settings)
        try:
            key = await create_api_key(conn, "reviewer", "integration")
        finally:
            await conn.close()
        statuses = []
        for base in (guarded.url, other.url, guarded.url, other.url):
            async with httpx.AsyncClient(
                base_url=base, headers={"X-API-Key": key}, timeout=30
            ) as integration:
                made_by_key = await integration.post("/datasets", json={"name": "by key"})
                statuses.append(made_by_key.status_code)
        assert statuses == [201, 201, 201, 429]


async def test_an_upload_over_its_declared_size_is_refused_by_the_storage(
    guarded: Api,
) -> None:
    async with guarded.client() as client, httpx.AsyncClient(timeout=30) as plain:
        dataset = (await client.post("/datasets", json={"name": "sizes"})).json()["dataset_id"]
        presigned = await client.post(
            f"/datasets/{dataset}/presign",
            json={
                "files": [
                    {"filename": f"{i}.png", "content_type": "image/png", "size_bytes": len(PNG)}
                    for i in range(2)
                ]
            },
        )
        assert presigned.status_code == 200, presigned.text
        small, big = presigned.json()["uploads"]
        assert small["max_bytes"] == len(PNG)
        fits = await post_upload(plain, small, PNG)
        assert fits.status_code == 204, fits.text
        # One byte over the declared size: the storage refuses it while receiving.
        refused = await post_upload(plain, big, PNG + b"\0")
        assert refused.status_code == 400, refused.text
        assert "EntityTooLarge" in refused.text
        much = await post_upload(plain, big, PNG * 1000)
        assert much.status_code == 400, much.text
        registered = await client.post(
            f"/datasets/{dataset}/register-scenes",
            json={"scenes": [{"scene_id": small["scene_id"]}, {"scene_id": big["scene_id"]}]},
        )
        # Nothing of the refused uploads reached the bucket.
        assert registered.status_code == 409, registered.text
        assert f"{big['scene_id']}: not uploaded" in registered.text
    # The one that fits registers (as another caller: alice spent her three writes), and
    # its media link redirects to a URL presigned for the TTL, within 5 to 15 minutes.
    async with httpx.AsyncClient(
        base_url=guarded.url,
        headers={"Authorization": f"Bearer {guarded.token(subject='carol')}"},
        timeout=30,
    ) as carol:
        kept = await carol.post(
            f"/datasets/{dataset}/register-scenes",
            json={"scenes": [{"scene_id": small["scene_id"]}]},
        )
        assert kept.status_code == 200, kept.text
        scene = (await carol.get(f"/scenes/{small['scene_id']}")).json()
        link = scene["original_url"]
        expires = int(parse_qs(urlsplit(link).query)["exp"][0])
        ttl = guarded.settings.presign_ttl_s
        assert ttl <= expires - time.time() <= 1.5 * ttl + 1
        redirect = await carol.get(link)
        assert redirect.status_code == 302
        signed = parse_qs(urlsplit(redirect.headers["location"]).query)
        assert int(signed["X-Amz-Expires"][0]) == ttl
        assert 300 <= ttl <= 900


async def test_the_projector_metrics_need_the_token_when_it_is_set() -> None:
    async def health() -> tuple[int, dict[str, object]]:
        return 200, {"status": "ok"}

    port = free_port()
    server = await projector_http.serve(health, "127.0.0.1", port, metrics_token=METRICS_TOKEN)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as plain:
            assert (await plain.get("/health")).status_code == 200
            bare = await plain.get("/metrics")
            assert bare.status_code == 401
            assert "Bearer" in bare.text
            wrong = await plain.get("/metrics", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            scraped = await plain.get(
                "/metrics", headers={"authorization": f"bearer {METRICS_TOKEN}"}
            )
            assert scraped.status_code == 200
            assert "# TYPE" in scraped.text
    finally:
        server.close()
        await server.wait_closed()
