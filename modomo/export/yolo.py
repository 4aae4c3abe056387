"""YOLO (ultralytics) datasets: detection (``yolo``) and segmentation (``yolo-seg``).

Layout: ``data.yaml``, ``images/{train,val}/<scene_id>.<ext>``, ``labels/{train,val}/
<scene_id>.txt``, one line per object: ``class cx cy w h`` (detection) or ``class x1 y1 x2
y2 ...`` (segmentation polygon), every coordinate a fraction of the image. ultralytics finds
a label file by replacing ``/images/`` with ``/labels/`` in its image's path, so one image
tree carries one label set: the two tasks are two formats rather than one archive holding
every image twice.

``data.yaml`` names no ``path``, so ultralytics resolves the splits against the folder the
file is in. Classes are the FURNITURE taxonomy in order from 0, the same in every export.
About a tenth of the scenes go to ``val``, chosen by a hash of the scene id, so a scene
stays in its split across exports; a single-scene dataset validates on its training image.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from modomo.domain.taxonomies import FURNITURE
from modomo.export.coco import CATEGORY_IDS
from modomo.export.pack import ObjectPack, ScenePack

VAL_SHARE = 10
"""One scene in this many (by hash) goes to the validation split."""


def _clip(value: float) -> float:
    return min(max(value, 0.0), 1.0)


def _f(value: float) -> str:
    return f"{_clip(value):.6f}"


def split_of(scene_id: str) -> str:
    return "val" if hashlib.sha256(scene_id.encode()).digest()[0] % VAL_SHARE == 0 else "train"


def _box_line(cls: int, bbox: Sequence[float]) -> str:
    x0, y0, x1, y1 = (_clip(v) for v in bbox)
    return f"{cls} {_f((x0 + x1) / 2)} {_f((y0 + y1) / 2)} {_f(x1 - x0)} {_f(y1 - y0)}"


def _area(points: np.ndarray) -> float:
    y, x = points[:, 0], points[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, 1)) - np.dot(y, np.roll(x, 1))))


def polygon(mask: np.ndarray) -> list[tuple[float, float]]:
    """The outline of the mask's largest part (simplified to within a pixel), as fractions
    of the mask's width and height."""
    from skimage import measure

    # Padding closes the outlines of parts that touch the image's edge. The 0.5 level runs
    # along pixel edges: index coordinates (pixel centres) + 0.5, less the padding's 1.
    padded = np.pad(mask.astype(np.uint8), 1)
    contours = measure.find_contours(padded, 0.5)
    if not contours:
        return []
    largest = max(contours, key=_area)
    outline = measure.approximate_polygon(largest, tolerance=1.0)[:-1] - 0.5
    height, width = mask.shape
    return [(float(x) / width, float(y) / height) for y, x in outline]


def _segment_line(cls: int, item: ObjectPack) -> str:
    points = polygon(item.mask) if item.mask is not None else []
    if len(points) < 3:
        x0, y0, x1, y1 = item.row.bbox
        points = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    return f"{cls} " + " ".join(f"{_f(x)} {_f(y)}" for x, y in points)


def data_yaml(val_dir: str, header: str) -> bytes:
    names = "\n".join(f"  {i}: {code}" for i, code in enumerate(FURNITURE.codes()))
    return (
        f"# {header}\n"
        "train: images/train\n"
        f"val: {val_dir}\n"
        f"nc: {len(FURNITURE.terms)}\n"
        f"names:\n{names}\n"
    ).encode()


def yolo_files(packs: Sequence[ScenePack], *, segment: bool, header: str) -> dict[str, bytes]:
    """The dataset's files by path."""
    splits = {p.scene_id: split_of(p.scene_id) for p in packs}
    if len(packs) > 1 and "val" not in splits.values():
        splits[packs[0].scene_id] = "val"
    files: dict[str, bytes] = {}
    for pack in packs:
        assert pack.image is not None, "the YOLO formats carry images"
        split = splits[pack.scene_id]
        lines = []
        for item in pack.objects:
            cls = CATEGORY_IDS[item.row.category_code] - 1
            lines.append(_segment_line(cls, item) if segment else _box_line(cls, item.row.bbox))
        files[f"images/{split}/{pack.file_name}"] = pack.image
        files[f"labels/{split}/{pack.scene_id}.txt"] = "".join(f"{ln}\n" for ln in lines).encode()
    val_dir = "images/val" if "val" in splits.values() else "images/train"
    files["data.yaml"] = data_yaml(val_dir, header)
    return files
