"""Every metric a Grafana dashboard or an alert rule queries is really updated: driven by
real work (a job over a good and a bad image, queued first with no worker at all, an SSE
client, an event the projectors must park) and read back from HTTP scrapes of the
processes that export it (the API, ``modomo project``, ``modomo worker``).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from modomo.demo.services import free_port
from modomo.settings import Settings
from modomo.streams.keys import EVENT_FIELD, Keys
from modomo.synthetic.rooms import room
from tests.faults.observe import Samples, health, scrape, spawn
from tests.integration.api_support import running_api
from tests.integration.support import stop_process, wait_for
from tests.uploads import post_upload

pytestmark = pytest.mark.integration

OPS = Path(__file__).resolve().parents[2] / "ops"


def queried_metrics() -> set[str]:
    """Every metric name the dashboards and alert rules use."""
    texts = [p.read_text() for p in (OPS / "grafana/dashboards").glob("*.json")]
    texts.append((OPS / "prometheus/alerts.yml").read_text())
    names: set[str] = set()
    for text in texts:
        names.update(re.findall(r"\b((?:modomo|litestar)_[a-z0-9_]+)\b", text))
    # A histogram is queried by its buckets; its count says it was observed.
    return {re.sub(r"_bucket$", "_count", name) for name in names}


def _values(samples: Samples, name: str, **labels: str) -> list[float]:
    return [v for (n, have), v in samples.items() if n == name and set(labels.items()) <= set(have)]


def positive(**labels: str) -> Callable[[Samples, str], bool]:
    return lambda s, name: any(v > 0 for v in _values(s, name, **labels))


def equals(value: float, **labels: str) -> Callable[[Samples, str], bool]:
    return lambda s, name: value in _values(s, name, **labels)


def exported(s: Samples, name: str) -> bool:
    return bool(_values(s, name))


# Metric -> (the process to scrape, when: "idle" with no worker yet or "end", the check).
EXPECTED: dict[str, tuple[str, str, Callable[[Samples, str], bool]]] = {
    "litestar_requests_total": ("api", "end", positive(path="/datasets")),
    "litestar_request_duration_seconds_count": ("api", "end", positive()),
    "modomo_jobs_created_total": ("api", "idle", positive()),
    "modomo_sse_clients": ("api", "idle", equals(1)),
    "modomo_sse_redis_readers": ("api", "idle", equals(1)),
    "modomo_queue_length": ("api", "idle", equals(2)),
    "modomo_queue_undelivered": ("api", "idle", equals(2)),
    "modomo_queue_consumers_live": ("api", "end", equals(1)),
    "modomo_queue_pending": ("api", "end", equals(0)),
    "modomo_dead_tasks": ("api", "end", equals(1)),
    "modomo_dead_oldest_age_seconds": ("api", "end", positive()),
    "modomo_dead_reason": ("api", "end", positive()),
    "modomo_tasks_succeeded_total": ("worker", "end", equals(1)),
    "modomo_tasks_failed_total": ("worker", "end", positive()),
    "modomo_tasks_dead_lettered_total": ("worker", "end", equals(1)),
    "modomo_tasks_in_flight": ("worker", "end", equals(0)),
    "modomo_task_duration_seconds_count": ("worker", "end", equals(1)),
    "modomo_stage_duration_seconds_count": ("worker", "end", positive(stage="caption")),
    "modomo_scenes_processed_total": ("worker", "end", positive(status="ok")),
    # On the CPU torch holds no GPU memory: the gauge is set, to 0.
    "modomo_gpu_memory_bytes": ("worker", "end", exported),
    "modomo_projector_events_total": ("projector", "end", positive(projector="scenes")),
    "modomo_projector_batch_seconds_count": ("projector", "end", positive(projector="jobs")),
    "modomo_projector_active": ("projector", "end", equals(1, projector="archive")),
    "modomo_projector_lag_events": ("projector", "end", equals(0, projector="scenes")),
    "modomo_projector_parked_total": ("projector", "end", equals(1, projector="datasets")),
    "modomo_projector_parked_open": ("projector", "end", equals(1, projector="datasets")),
}


def test_every_queried_metric_has_a_check() -> None:
    assert queried_metrics() == set(EXPECTED)


async def _upload(client: httpx.AsyncClient) -> tuple[str, list[str]]:
    dataset = (await client.post("/datasets", json={"name": "metrics"})).json()["dataset_id"]
    bodies = [room(1, 320, 240), b"this is not an image at all"]
    files = [
        {"filename": f"f{i}.jpg", "content_type": "image/jpeg", "size_bytes": len(b)}
        for i, b in enumerate(bodies)
    ]
    uploads = (await client.post(f"/datasets/{dataset}/presign", json={"files": files})).json()
    async with httpx.AsyncClient() as plain:
        for upload, body in zip(uploads["uploads"], bodies, strict=True):
            put = await post_upload(plain, upload, body)
            assert put.status_code == 204, put.text
    scenes = [u["scene_id"] for u in uploads["uploads"]]
    registered = await client.post(
        f"/datasets/{dataset}/register-scenes",
        json={"scenes": [{"scene_id": s} for s in scenes]},
    )
    assert registered.status_code == 200, registered.text
    return dataset, scenes


async def test_dashboard_and_alert_metrics_move_in_real_scrapes(
    db_settings: Settings,
    s3_endpoint: str,
    redis: Redis,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    settings = msgspec.structs.replace(
        db_settings,
        max_attempts=1,
        metrics_port=free_port(),
        worker_http_port=free_port(),
        model_profile="tiny",
        # Shared with the end-to-end test: the random weights are written once a session.
        model_dir=str(tmp_path_factory.getbasetemp() / "e2e-models"),
    )
    failures: list[str] = []
    async with running_api(settings, s3_endpoint, projectors=False) as api:
        urls = {
            "api": f"{api.url}/metrics",
            "projector": f"http://127.0.0.1:{settings.metrics_port}/metrics",
            "worker": f"http://127.0.0.1:{settings.worker_http_port}/metrics",
        }

        async def check(when: str) -> None:
            for name, (where, at, ok) in EXPECTED.items():
                if at == when and not ok(await scrape(urls[where]), name):
                    failures.append(f"{name} ({where}, {when})")

        async def settled(when: str) -> bool:
            """Gauges refresh on intervals: give them a few rounds to show the state."""
            for name, (where, at, ok) in EXPECTED.items():
                if at == when and not ok(await scrape(urls[where]), name):
                    return False
            return True

        projector = spawn(api.settings, "project", log=tmp_path / "project.log")
        worker = None
        sse: asyncio.Task[None] | None = None
        try:

            async def projecting() -> bool:
                return (await health(urls["projector"].replace("/metrics", "/health")))[0] == 200

            await wait_for(projecting, within=60, what="the projector process")
            async with api.client() as client:
                dataset_id, _ = await _upload(client)
                job = await client.post("/jobs", json={"dataset_id": dataset_id})
                assert job.status_code == 201, job.text
                job_id = job.json()["job_id"]

                async def follow() -> None:
                    async with client.stream("GET", f"/jobs/{job_id}/events") as stream:
                        async for _ in stream.aiter_lines():
                            pass

                sse = asyncio.create_task(follow())
                # An event no projector can store: the datasets projector parks it.
                await redis.xadd(
                    Keys(settings.redis_prefix).events,
                    {EVENT_FIELD: b'{"type":"dataset_created","dataset_id":"p","name":"a\\u0000"}'},
                )
                with contextlib.suppress(AssertionError):
                    await wait_for(lambda: settled("idle"), within=20, what="idle gauges")
                await check("idle")

                worker = spawn(
                    api.settings,
                    "worker",
                    log=tmp_path / "worker.log",
                    env={"HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "1"},
                )

                async def job_ended() -> bool:
                    state = (await client.get(f"/jobs/{job_id}")).json()
                    return state["status"] in ("succeeded", "partial", "failed")

                await wait_for(job_ended, within=240, what="the job to end")
                with contextlib.suppress(AssertionError):
                    await wait_for(lambda: settled("end"), within=20, what="end gauges")
                await check("end")
        finally:
            if sse is not None:
                sse.cancel()
                with contextlib.suppress(BaseException):
                    await sse
            for proc in (worker, projector):
                if proc is not None:
                    stop_process(proc)
    assert failures == [], failures
