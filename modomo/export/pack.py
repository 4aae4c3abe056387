"""Everything one scene contributes to an export: rows from the snapshot, bytes from storage.

Originals and masks are fetched with bounded concurrency. Sizes are those of the image a
reader sees: the original's, after its EXIF orientation (how Pillow, OpenCV and ultralytics
show it). Masks were stored at the pipeline's frame (at most ``resize_max_px``), so they are
scaled to that size with nearest-neighbour sampling when the two differ.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from PIL import Image

from modomo.domain.snapshot import DatasetSnapshot
from modomo.domain.views import MaterialRow, ObjectRow, SceneView

EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}
_ROTATED = {5, 6, 7, 8}
"""EXIF orientations that swap width and height."""


class Blobs(Protocol):
    """Where originals and masks are read from (the bucket, or a folder laid out like it)."""

    async def get(self, key: str) -> bytes: ...


class ExportError(RuntimeError):
    """The export cannot be built from what the log and storage hold; says why."""


@dataclass(frozen=True, slots=True)
class ObjectPack:
    row: ObjectRow
    verdict: str | None
    materials: list[MaterialRow]
    mask: np.ndarray | None
    """Boolean ``(height, width)`` at the scene pack's size; None without a stored mask."""


@dataclass(frozen=True, slots=True)
class ScenePack:
    view: SceneView
    verdict: str | None
    objects: list[ObjectPack]
    image: bytes | None
    """The original's bytes, when the format carries images."""
    ext: str
    width: int | None
    height: int | None

    @property
    def scene_id(self) -> str:
        return self.view.row.scene_id

    @property
    def file_name(self) -> str:
        return f"{self.scene_id}.{self.ext}"


def _missing(exc: BaseException) -> bool:
    if isinstance(exc, FileNotFoundError):
        return True
    response: Any = getattr(exc, "response", None)
    code = response.get("Error", {}).get("Code") if isinstance(response, dict) else None
    return code in ("404", "NoSuchKey", "NotFound")


async def _fetch(blobs: Blobs, key: str, what: str) -> bytes:
    try:
        return await blobs.get(key)
    except Exception as exc:
        if _missing(exc):
            raise ExportError(f"{what} {key} is in the log but missing from storage") from None
        raise


def image_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` of an image as shown upright (EXIF orientation applied)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except (OSError, SyntaxError, ValueError) as exc:
        raise ExportError(f"not a readable image: {exc}") from None
    return (height, width) if orientation in _ROTATED else (width, height)


def decode_mask(data: bytes, size: tuple[int, int] | None) -> np.ndarray:
    """A stored mask PNG as booleans, scaled to ``size`` (width, height) when given."""
    with Image.open(io.BytesIO(data)) as image:
        grey = image.convert("L")
        if size is not None and grey.size != size:
            grey = grey.resize(size, Image.Resampling.NEAREST)
        mask: np.ndarray = np.asarray(grey) > 127
        return mask


async def gather(
    snapshot: DatasetSnapshot,
    *,
    reviewed_only: bool,
    blobs: Blobs,
    images: bool,
    progress: Callable[[int, int], None] | None = None,
    concurrency: int = 8,
) -> list[ScenePack]:
    """One pack per exported scene, in scene id order."""
    scene_ids = snapshot.scene_ids(reviewed_only)
    limit = asyncio.Semaphore(concurrency)
    done = 0

    async def one(scene_id: str) -> ScenePack:
        nonlocal done
        view = snapshot.scenes[scene_id]
        row = view.row
        async with limit:
            data = size = None
            if images:
                data = await _fetch(blobs, row.r2_key_original, f"the original of scene {scene_id}")
                size = await asyncio.to_thread(image_size, data)
            objects = []
            for obj in snapshot.objects(scene_id, reviewed_only):
                mask = None
                if obj.mask_key:
                    png = await _fetch(blobs, obj.mask_key, f"the mask of object {obj.object_id}")
                    mask = await asyncio.to_thread(decode_mask, png, size)
                materials = [
                    view.materials[k] for k in sorted(view.materials) if k[0] == obj.object_id
                ]
                objects.append(ObjectPack(obj, snapshot.verdict(obj), materials, mask))
        if size is None:
            frame = next((o.mask.shape for o in objects if o.mask is not None), None)
            size = (row.width, row.height) if row.width and row.height else None
            if size is None and frame is not None:
                size = (int(frame[1]), int(frame[0]))
        done += 1
        if progress is not None:
            progress(done, len(scene_ids))
        return ScenePack(
            view=view,
            verdict=snapshot.scene_verdicts.get(scene_id),
            objects=objects,
            image=data,
            ext=EXTENSIONS.get(row.content_type, "jpg"),
            width=size[0] if size else None,
            height=size[1] if size else None,
        )

    return list(await asyncio.gather(*(one(s) for s in scene_ids)))
