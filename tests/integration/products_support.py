"""A labelled dataset on the real services, for export, evaluation and similarity tests.

The "model results" are the painted truth of synthetic rooms: originals and masks go to
the bucket (SeaweedFS), stage events to the log, exactly as the GPU worker writes them,
so what an export or evaluation reads back can be compared with what was painted.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import msgspec
import numpy as np
from PIL import Image
from redis.asyncio import Redis

from modomo.domain.events import (
    Colour,
    DatasetCreated,
    Detection,
    Embedding,
    EventBase,
    JobCreated,
    Mask,
    MasksSegmented,
    MaterialsClassified,
    ModelRef,
    ObjectMaterials,
    ObjectsDetected,
    PaletteExtracted,
    RegisteredScene,
    SceneCaptioned,
    SceneClassified,
    SceneCompleted,
    SceneQueued,
    ScenesRegistered,
    SceneStarted,
    Scored,
    StylesClassified,
)
from modomo.settings import Settings
from modomo.storage import Storage, mask_key, scene_key, thumb_key
from modomo.synthetic.golden import hex_lab
from modomo.synthetic.rooms import PaintedRoom, painted_room
from tests.integration.projection_support import publish
from tests.integration.s3 import ACCESS_KEY, SECRET_KEY

MODEL = ModelRef(id="truth", profile="test")


def with_bucket(settings: Settings, s3_endpoint: str) -> Settings:
    return msgspec.structs.replace(
        settings,
        s3_endpoint_url=s3_endpoint,
        s3_access_key_id=ACCESS_KEY,
        s3_secret_access_key=SECRET_KEY,
        s3_bucket=f"b-{settings.redis_prefix}",
    )


@asynccontextmanager
async def bucket(settings: Settings) -> AsyncIterator[Storage]:
    async with Storage.open(settings) as storage:
        await storage.ensure_bucket()
        yield storage


def png(mask: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(out, format="PNG")
    return out.getvalue()


def object_ids(scene_id: str, room: PaintedRoom) -> list[str]:
    return [str(uuid.uuid5(uuid.UUID(scene_id), f"truth:{i}")) for i in range(len(room.objects))]


def unit(seed: int, dim: int = 16) -> Embedding:
    vec = np.random.default_rng(seed).normal(size=dim)
    return Embedding.of([float(v) for v in vec / np.linalg.norm(vec)])


@dataclass
class Painted:
    dataset_id: str
    job_id: str
    scene_ids: list[str]
    rooms: dict[str, PaintedRoom]
    objects: dict[str, list[str]]
    """Object ids of each scene, in the room's object order."""
    events: list[EventBase] = field(default_factory=list)
    last: str = "0-0"


def scene_events(job_id: str, scene_id: str, room: PaintedRoom, ids: list[str]) -> list[EventBase]:
    """What the pipeline would append for ``room`` if its models were perfect."""
    common = {"job_id": job_id, "scene_id": scene_id}
    return [
        SceneQueued(**common),
        SceneStarted(**common),
        SceneClassified(
            **common,
            model=MODEL,
            scene_type=room.scene_type,
            confidence=0.9,
            embedding=unit(uuid.UUID(scene_id).int % 1000),
        ),
        StylesClassified(
            **common, model=MODEL, styles=tuple(Scored(code=s, score=0.8) for s in room.styles)
        ),
        ObjectsDetected(
            **common,
            model=MODEL,
            width=room.width,
            height=room.height,
            objects=tuple(
                Detection(
                    object_id=oid,
                    category=obj.category,
                    confidence=0.9 - 0.01 * i,
                    bbox=obj.bbox,
                    label=obj.category,
                )
                for i, (oid, obj) in enumerate(zip(ids, room.objects, strict=True))
            ),
        ),
        MasksSegmented(
            **common,
            model=MODEL,
            masks=tuple(
                Mask(
                    object_id=oid,
                    mask_key=mask_key(scene_id, oid),
                    thumb_key=thumb_key(scene_id, oid),
                    area=float(obj.mask.mean()),
                )
                for oid, obj in zip(ids, room.objects, strict=True)
            ),
        ),
        MaterialsClassified(
            **common,
            model=MODEL,
            objects=tuple(
                ObjectMaterials(
                    object_id=oid,
                    materials=tuple(Scored(code=c, score=0.7) for c in obj.materials),
                    embedding=unit(i + 7 * len(ids)),
                )
                for i, (oid, obj) in enumerate(zip(ids, room.objects, strict=True))
            ),
        ),
        SceneCaptioned(**common, model=MODEL, caption=room.caption),
        PaletteExtracted(
            **common,
            model=MODEL,
            colours=tuple(
                Colour(hex=h, lab=tuple(hex_lab(h)), share=s)  # type: ignore[arg-type]
                for h, s in room.palette[:8]
            ),
        ),
        SceneCompleted(**common, status="ok", objects=len(ids), avg_conf=0.9),
    ]


async def painted_dataset(
    redis: Redis,
    settings: Settings,
    storage: Storage,
    scenes: int = 3,
    *,
    size: tuple[int, int] = (320, 240),
    seed: int = 1,
) -> Painted:
    """Upload ``scenes`` painted rooms and their masks, and log a job whose results are
    the painted truth; returns what was made (the events are published, not projected)."""
    dataset_id, job_id = str(uuid.uuid4()), str(uuid.uuid4())
    scene_ids = [str(uuid.uuid4()) for _ in range(scenes)]
    rooms = {s: painted_room(seed + i, *size) for i, s in enumerate(scene_ids)}
    objects = {s: object_ids(s, rooms[s]) for s in scene_ids}
    events: list[EventBase] = [
        DatasetCreated(dataset_id=dataset_id, name="painted rooms"),
        ScenesRegistered(
            dataset_id=dataset_id,
            scenes=tuple(
                RegisteredScene(
                    scene_id=s,
                    r2_key_original=scene_key(s),
                    size_bytes=len(rooms[s].jpeg),
                    filename=f"room-{i:03d}.jpg",
                )
                for i, s in enumerate(scene_ids)
            ),
        ),
        JobCreated(job_id=job_id, dataset_id=dataset_id, scene_ids=tuple(scene_ids)),
    ]
    for scene_id in scene_ids:
        room = rooms[scene_id]
        await storage.put(scene_key(scene_id), room.jpeg, "image/jpeg")
        for oid, obj in zip(objects[scene_id], room.objects, strict=True):
            await storage.put(mask_key(scene_id, oid), png(obj.mask), "image/png")
        events += scene_events(job_id, scene_id, room, objects[scene_id])
    last = await publish(redis, settings, events)
    return Painted(dataset_id, job_id, scene_ids, rooms, objects, events, last)
