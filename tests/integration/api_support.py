"""A running API (real uvicorn on loopback) with projectors behind it, for API tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
import msgspec
import uvicorn
from redis.asyncio import Redis

from modomo.api.app import create_app
from modomo.api.auth import Role, issue_token
from modomo.demo.services import free_port
from modomo.domain.events import (
    DepthEstimated,
    Detection,
    EventBase,
    ModelRef,
    ObjectsDetected,
    SceneClassified,
    SceneCompleted,
    Scored,
    StylesClassified,
)
from modomo.projections.registry import select
from modomo.projections.runner import ProjectorRunner
from modomo.settings import Settings
from modomo.storage import Storage
from modomo.streams.delivery import TaskContext
from tests.integration.s3 import ACCESS_KEY, SECRET_KEY
from tests.uploads import post_upload

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00"
    b"\x00\x90wS\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


@dataclass
class Api:
    url: str
    settings: Settings

    def token(
        self,
        role: Role = "reviewer",
        subject: str = "alice",
        ttl_s: int = 600,
        org: str | None = None,
    ) -> str:
        return issue_token(self.settings.jwt_secret, subject, role, ttl_s, org=org)

    def client(self, role: Role | None = "reviewer", org: str | None = None) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.token(role, org=org)}"} if role else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)


@asynccontextmanager
async def running_api(
    settings: Settings, s3_endpoint: str, projectors: bool = True
) -> AsyncIterator[Api]:
    """The API on a free port with every projector running (unless ``projectors`` is
    False: a test then runs its own), and a fresh bucket."""
    settings = msgspec.structs.replace(
        settings,
        s3_endpoint_url=s3_endpoint,
        s3_access_key_id=ACCESS_KEY,
        s3_secret_access_key=SECRET_KEY,
        s3_bucket=f"b-{settings.redis_prefix}",
        api_port=free_port(),
        write_wait_ms=5000,
        jwt_secret="t" * 40,
    )
    async with Storage.open(settings) as storage:
        await storage.ensure_bucket(settings.browser_origins)
    redis = Redis.from_url(settings.redis_url)
    runners = [
        ProjectorRunner(settings, redis, p, lease_poll_s=0.05)
        for p in (select(None) if projectors else [])
    ]
    tasks = [asyncio.create_task(r.run()) for r in runners]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=settings.api_port,
            log_config=None,
            access_log=False,
            lifespan="on",
        )
    )
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serving.done():
                serving.result()
            await asyncio.sleep(0.02)
        yield Api(url=f"http://127.0.0.1:{settings.api_port}", settings=settings)
    finally:
        server.should_exit = True
        await serving
        for runner in runners:
            runner.stop()
        await asyncio.gather(*tasks)
        await redis.aclose()


async def pipeline_handler(ctx: TaskContext) -> Sequence[EventBase]:
    """Stands in for the GPU pipeline: emits a few stage results per scene, as it would."""
    task = ctx.delivery.task
    common = {"job_id": task.job_id, "scene_id": task.scene_id, "attempt": ctx.delivery.attempt}
    object_id = f"{task.scene_id}-obj-0"
    await ctx.emit(
        SceneClassified(
            **common,
            model=ModelRef(id="clip", profile="test"),
            scene_type="living_room",
            confidence=0.9,
            duration_ms=12.0,
        )
    )
    await ctx.emit(
        StylesClassified(
            **common,
            model=ModelRef(id="clip", profile="test"),
            styles=(Scored(code="modern", score=0.7),),
            duration_ms=3.0,
        )
    )
    await ctx.emit(
        ObjectsDetected(
            **common,
            model=ModelRef(id="yolo", profile="test"),
            objects=(
                Detection(
                    object_id=object_id, category="sofa", confidence=0.8, bbox=(0.1, 0.1, 0.5, 0.5)
                ),
            ),
            width=640,
            height=480,
            duration_ms=20.0,
        )
    )
    await ctx.emit(
        DepthEstimated(
            **common,
            model=ModelRef(id="depth", profile="test"),
            depth_key=f"depth/{task.scene_id}.png",
            near=0.5,
            far=6.0,
            duration_ms=30.0,
        )
    )
    return [SceneCompleted(**common, status="ok", objects=1, avg_conf=0.8)]


async def dataset_with_scenes(
    api: Api, n: int = 2, org: str | None = None
) -> tuple[str, list[str]]:
    async with api.client(org=org) as client:
        created = await client.post("/datasets", json={"name": "rooms"})
        assert created.status_code == 201, created.text
        dataset_id = created.json()["dataset_id"]
        files = [
            {"filename": f"r{i}.png", "content_type": "image/png", "size_bytes": len(PNG)}
            for i in range(n)
        ]
        presigned = await client.post(f"/datasets/{dataset_id}/presign", json={"files": files})
        assert presigned.status_code == 200, presigned.text
        uploads = presigned.json()["uploads"]
        async with httpx.AsyncClient() as plain:
            for upload in uploads:
                put = await post_upload(plain, upload, PNG)
                assert put.status_code == 204, put.text
        scene_ids = [u["scene_id"] for u in uploads]
        registered = await client.post(
            f"/datasets/{dataset_id}/register-scenes",
            json={"scenes": [{"scene_id": s} for s in scene_ids]},
        )
        assert registered.status_code == 200, registered.text
        assert sorted(registered.json()["registered"]) == sorted(scene_ids)
    return dataset_id, scene_ids
