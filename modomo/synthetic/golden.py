"""A synthetic golden set: painted rooms and their ground truth as COCO with extensions.

``write_golden(folder, scenes)`` writes ``images/room-NNN.jpg`` and ``ground_truth.json``
(the format of :mod:`modomo.export.coco`: a reviewed export is a golden set too). Upload
the images to a dataset under their file names, run a job, and ``modomo eval --golden
folder/ground_truth.json --job JOB`` scores it; ``just eval`` does all of that.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec

from modomo.export.coco import CATEGORY_IDS, box_pixels, categories, info, rle, rle_area
from modomo.synthetic.rooms import PaintedRoom, painted_room

GROUND_TRUTH = "ground_truth.json"


def hex_lab(hex_colour: str) -> list[float]:
    """CIELAB (D65) of ``#rrggbb``, the space the palette stage works in."""
    import numpy as np
    from skimage.color import rgb2lab

    rgb = np.array([[[int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]]])
    return [round(float(v), 3) for v in rgb2lab(rgb)[0, 0]]


def golden_document(rooms: list[tuple[str, PaintedRoom]], description: str) -> dict[str, Any]:
    """The ground truth of ``(file_name, room)`` pairs as COCO with Modomo extensions."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, (file_name, room) in enumerate(rooms, start=1):
        images.append(
            {
                "id": image_id,
                "file_name": file_name,
                "width": room.width,
                "height": room.height,
                "modomo": {
                    "filename": file_name,
                    "scene_type": room.scene_type,
                    "styles": [{"code": code, "score": 1.0} for code in room.styles],
                    "caption": room.caption,
                    "palette": [
                        {"hex": h, "lab": hex_lab(h), "share": share} for h, share in room.palette
                    ],
                },
            }
        )
        for obj in room.objects:
            encoded = rle(obj.mask)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": CATEGORY_IDS[obj.category],
                    "bbox": box_pixels(obj.bbox, room.width, room.height),
                    "area": float(rle_area(encoded)),
                    "iscrowd": 0,
                    "segmentation": encoded,
                    "modomo": {
                        "category": obj.category,
                        "materials": [{"code": m, "score": 1.0} for m in obj.materials],
                    },
                }
            )
    return {
        "info": info(description, "", "2026-01-01T00:00:00+00:00"),
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories(),
    }


def write_golden(
    folder: Path, scenes: int = 200, *, seed: int = 0, width: int = 640, height: int = 480
) -> Path:
    """Write ``scenes`` painted rooms and their truth under ``folder``; the truth's path."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rooms = []
    for i in range(scenes):
        room = painted_room(seed + i, width, height)
        name = f"room-{i:03d}.jpg"
        (folder / "images" / name).write_bytes(room.jpeg)
        rooms.append((name, room))
    document = golden_document(rooms, f"synthetic golden set: {scenes} rooms from seed {seed}")
    path = folder / GROUND_TRUTH
    path.write_bytes(msgspec.json.encode(document))
    return path
