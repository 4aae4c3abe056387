"""A worker process whose handler does what the GPU worker does with storage, without
models: download the original (streamed, capped at ``max_upload_bytes``, conditional on
the ETag registered), decode it safely, store a thumbnail, finish the scene.

``python -m tests.faults.storage_proc`` with the ``MODOMO_*`` settings in the environment
(S3 included); prints ``ready`` once its group exists and stops on SIGTERM. It uses the
production pieces: :class:`modomo.storage.Storage` wrapped in
:class:`modomo.gpu.storage.Retrying`, and :func:`modomo.gpu.image.decode_image`.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Sequence

from modomo.domain.events import EventBase, SceneCompleted
from modomo.gpu.image import decode_image
from modomo.gpu.storage import ObjectStore, Retrying
from modomo.logs import configure_logging
from modomo.settings import Settings
from modomo.storage import Storage
from modomo.streams.connection import connect
from modomo.streams.delivery import Handler, TaskContext
from tests.integration.worker_proc import serve

WORK_S = float(os.environ.get("MODOMO_TEST_SLOW_S", "0"))
"""Seconds the "model" takes between the download and the upload."""


def thumbnail_key(scene_id: str) -> str:
    return f"thumbs/{scene_id}/original.jpg"


def fetching(store: ObjectStore, settings: Settings) -> Handler:
    """The handler: the GPU worker's storage path around a trivial "model"."""

    async def handle(ctx: TaskContext) -> Sequence[EventBase]:
        task = ctx.delivery.task
        data = await store.get(
            task.r2_key_original, max_bytes=settings.max_upload_bytes, etag=task.etag
        )
        image = await asyncio.to_thread(decode_image, data, 64)
        await asyncio.sleep(WORK_S)
        out = io.BytesIO()
        image.image.save(out, "JPEG")
        await store.put(thumbnail_key(task.scene_id), out.getvalue(), "image/jpeg")
        return [
            SceneCompleted(job_id=task.job_id, scene_id=task.scene_id, attempt=ctx.delivery.attempt)
        ]

    return handle


async def main() -> int:
    settings = Settings.from_env()
    configure_logging(settings)
    redis = connect(settings)
    try:
        async with Storage.open(settings, attempts=1) as bucket:
            return await serve(redis, settings, fetching(Retrying(bucket, cap_ms=500), settings))
    finally:
        await redis.aclose()


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
