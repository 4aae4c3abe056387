"""The GPU worker's side door beyond loopback (tiny random-weight models on the CPU):
``/warmup`` and ``/metrics`` need their tokens, ``/health`` stays open; by default it
listens on loopback only."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import httpx
import pytest

from modomo.demo.services import free_port
from modomo.gpu import http
from modomo.gpu.models import Models
from modomo.gpu.storage import DirStorage
from modomo.gpu.worker import GpuWorker
from modomo.settings import Settings
from modomo.streams.connection import connect
from tests.faults.servers import RedisServer
from tests.faults.test_gpu_worker import worker_settings
from tests.gpu.conftest import gpu_settings, models  # noqa: F401 - fixtures, shared
from tests.integration.support import wait_for

WORKER_TOKEN = "worker-" + "w" * 32
METRICS_TOKEN = "metrics-" + "m" * 32


def _outward_address() -> str | None:
    """This machine's address toward the network (no packet is sent), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only the route is looked up
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") or address == "0.0.0.0" else address


async def _answers(url: str) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            await client.get(url)
    except httpx.HTTPError:
        return False
    return True


async def test_warmup_and_metrics_need_their_tokens_beyond_loopback(
    tmp_path: Path,
    prefix: str,
    gpu_settings: Settings,  # noqa: F811
    models: Models,  # noqa: F811
) -> None:
    with RedisServer(tmp_path / "redis", password="redis-" + "r" * 24) as redis_server:
        settings = worker_settings(
            prefix,
            gpu_settings,
            redis_url=redis_server.url,
            worker_http_port=free_port(),
            worker_http_host="0.0.0.0",
            worker_token=WORKER_TOKEN,
            metrics_token=METRICS_TOKEN,
            jwt_secret="j" * 40,
            s3_secret_access_key="bucket-secret",
        )
        assert settings.exposed == ("MODOMO_WORKER_HTTP_HOST is 0.0.0.0",)
        redis = connect(settings)
        gpu = GpuWorker(settings, DirStorage(tmp_path / "bucket"), name="exposed")
        serving = asyncio.create_task(gpu.serve(redis, handle_signals=False))
        base = f"http://127.0.0.1:{settings.worker_http_port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:

                async def ready() -> bool:
                    with contextlib.suppress(httpx.HTTPError):
                        return (await client.get("/health")).status_code == 200
                    return False

                # /health needs nothing: a platform's probe sends no credentials.
                await wait_for(ready, within=120, what="the worker's /health to say 200")
                bare = await client.post("/warmup")
                assert bare.status_code == 401, bare.text
                assert "MODOMO_WORKER_TOKEN" in bare.json()["detail"]
                assert bare.headers["WWW-Authenticate"] == "Bearer"
                for wrong in (
                    f"Bearer {METRICS_TOKEN}",  # the scraper's token is not the warmup's
                    f"Basic {WORKER_TOKEN}",
                    f"Bearer {WORKER_TOKEN}x",
                    "Bearer",
                ):
                    denied = await client.post("/warmup", headers={"Authorization": wrong})
                    assert denied.status_code == 401, wrong
                warmed = await client.post(
                    "/warmup", headers={"Authorization": f"Bearer {WORKER_TOKEN}"}
                )
                assert warmed.status_code == 200, warmed.text
                assert warmed.json()["profile"] == "tiny"
                assert (await client.get("/metrics")).status_code == 401
                scraped = await client.get(
                    "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
                )
                assert scraped.status_code == 200
                assert "# TYPE" in scraped.text
            outward = _outward_address()
            if outward is not None:  # bound to every interface, not just loopback
                url = f"http://{outward}:{settings.worker_http_port}/health"
                assert await _answers(url)
        finally:
            gpu.stop()
            await asyncio.wait_for(serving, 30)
            await redis.aclose()


async def test_the_side_door_listens_on_loopback_by_default() -> None:
    outward = _outward_address()
    if outward is None:
        pytest.skip("this machine has no address beyond loopback to try")
    settings = Settings.from_env({})
    assert settings.worker_http_host == "127.0.0.1"
    assert settings.worker_token == ""

    async def warmup() -> dict[str, object]:
        return {"ok": True}

    app = http.make_app(lambda: (200, {"status": "ok"}), warmup)
    runner, port = await http.start(app, settings.worker_http_host, 0)
    try:
        assert await _answers(f"http://127.0.0.1:{port}/health")
        assert not await _answers(f"http://{outward}:{port}/health")
    finally:
        await runner.cleanup()
