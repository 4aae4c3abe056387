"""COCO with Modomo's extension fields: the export format, and the golden-set format.

Standard COCO ``instances`` JSON (``images``, ``annotations`` with RLE ``segmentation``,
``categories``), readable by pycocotools as is. Modomo's extras sit under a ``modomo`` key
on each image and annotation (and in ``info``), which COCO readers ignore:

- image ``modomo``: ``scene_id``, ``dataset_id``, ``filename`` (as uploaded), ``status``,
  ``scene_type`` / ``scene_type_confidence`` / ``scene_type_model``, ``styles``
  (``[{code, score}]``) / ``style_model``, ``caption`` / ``caption_model``, ``palette``
  (``[{hex, lab, share}]``) / ``palette_model``, ``depth`` (``{key, near, far, model}``),
  ``frame`` (``[width, height]`` the pipeline worked at), ``verdict`` (scene-level review).
- annotation ``modomo``: ``object_id``, ``confidence``, ``source`` (``detect`` or
  ``label``), ``model``, ``label`` (the detector's own name), ``materials``
  (``[{code, score}]``) / ``material_model``, ``attrs``, ``corrected_by``, ``verdict``,
  ``mask`` (``model``: the stored mask; ``box``: no mask, the box stands in).

Category ids are the FURNITURE taxonomy's order from 1, the same in every export, so two
exports' annotations compare without remapping. A golden set is this format too: a
reviewed export is one, and so is a file labelled elsewhere with the same fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np

from modomo.domain.taxonomies import FURNITURE
from modomo.export.pack import ObjectPack, ScenePack

CATEGORY_IDS: dict[str, int] = {code: i + 1 for i, code in enumerate(FURNITURE.codes())}
CATEGORY_CODES: dict[int, str] = {i: code for code, i in CATEGORY_IDS.items()}


def categories() -> list[dict[str, Any]]:
    """Every FURNITURE term as a COCO category, in taxonomy order."""
    return [
        {
            "id": CATEGORY_IDS[t.code],
            "name": t.code,
            "supercategory": "furniture",
            "modomo": {"display_name": t.name},
        }
        for t in FURNITURE.terms
    ]


def rle(mask: np.ndarray) -> dict[str, Any]:
    """A boolean ``(height, width)`` mask as COCO compressed RLE (JSON-ready)."""
    from pycocotools import mask as coco_mask

    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {
        "size": [int(encoded["size"][0]), int(encoded["size"][1])],
        "counts": encoded["counts"].decode("ascii"),
    }


def rle_area(encoded: dict[str, Any]) -> int:
    from pycocotools import mask as coco_mask

    return int(coco_mask.area({"size": encoded["size"], "counts": encoded["counts"].encode()}))


def decode_rle(encoded: dict[str, Any]) -> np.ndarray:
    """The boolean mask of a COCO compressed RLE."""
    from pycocotools import mask as coco_mask

    counts = encoded["counts"]
    data = {
        "size": encoded["size"],
        "counts": counts.encode() if isinstance(counts, str) else counts,
    }
    mask: np.ndarray = np.asarray(coco_mask.decode(data), dtype=bool)
    return mask


def box_pixels(bbox: list[float] | tuple[float, ...], width: int, height: int) -> list[float]:
    """A fractional ``(x0, y0, x1, y1)`` box as COCO's ``[x, y, w, h]`` in pixels."""
    x0, y0, x1, y1 = bbox
    return [
        round(x0 * width, 2),
        round(y0 * height, 2),
        round((x1 - x0) * width, 2),
        round((y1 - y0) * height, 2),
    ]


def box_polygon(bbox: list[float] | tuple[float, ...], width: int, height: int) -> list[float]:
    """The box's outline as a COCO polygon, for an object without a mask."""
    x, y, w, h = box_pixels(bbox, width, height)
    return [x, y, x + w, y, x + w, y + h, x, y + h]


def info(description: str, position: str, date_created: str) -> dict[str, Any]:
    return {
        "description": description,
        "version": position,
        "contributor": "Modomo",
        "date_created": date_created,
        "url": "",
    }


def _image_extras(pack: ScenePack) -> dict[str, Any]:
    row = pack.view.row
    return {
        "scene_id": row.scene_id,
        "dataset_id": row.dataset_id,
        "filename": row.filename,
        "status": row.status,
        "scene_type": row.scene_type,
        "scene_type_confidence": row.scene_type_conf,
        "scene_type_model": row.scene_type_model,
        "styles": [
            {"code": s.style_code, "score": s.score}
            for s in sorted(pack.view.styles.values(), key=lambda s: (-s.score, s.style_code))
        ],
        "style_model": row.style_model,
        "caption": row.caption,
        "caption_model": row.caption_model,
        "palette": row.palette or [],
        "palette_model": row.palette_model,
        "depth": None
        if row.depth_key is None
        else {
            "key": row.depth_key,
            "near": row.depth_near,
            "far": row.depth_far,
            "model": row.depth_model,
        },
        "frame": [row.width, row.height] if row.width and row.height else None,
        "verdict": pack.verdict,
    }


def _annotation(pack: ScenePack, item: ObjectPack, ann_id: int, image_id: int) -> dict[str, Any]:
    obj = item.row
    width, height = pack.width or 0, pack.height or 0
    segmentation: Any
    if item.mask is not None:
        segmentation = rle(item.mask)
        area = float(rle_area(segmentation))
    else:
        segmentation = [box_polygon(obj.bbox, width, height)]
        box = box_pixels(obj.bbox, width, height)
        area = round(box[2] * box[3], 2)
    return {
        "id": ann_id,
        "image_id": image_id,
        "category_id": CATEGORY_IDS.get(obj.category_code, 0),
        "bbox": box_pixels(obj.bbox, width, height),
        "area": area,
        "iscrowd": 0,
        "segmentation": segmentation,
        "score": obj.confidence,
        "modomo": {
            "object_id": obj.object_id,
            "category": obj.category_code,
            "confidence": obj.confidence,
            "source": obj.source,
            "model": obj.model,
            "label": obj.label,
            "materials": [{"code": m.material_code, "score": m.score} for m in item.materials],
            "material_model": item.materials[0].model if item.materials else None,
            "attrs": dict(sorted(obj.attrs.items())),
            "corrected_by": obj.corrected_by,
            "verdict": item.verdict,
            "mask": "model" if item.mask is not None else "box",
            "segment_model": obj.segment_model,
        },
    }


def coco_document(
    packs: Sequence[ScenePack], description: str, position: str, date_created: str
) -> dict[str, Any]:
    """The COCO ``instances`` document of ``packs`` (images numbered from 1 in order)."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, pack in enumerate(packs, start=1):
        images.append(
            {
                "id": image_id,
                "file_name": pack.file_name,
                "width": pack.width,
                "height": pack.height,
                "modomo": _image_extras(pack),
            }
        )
        for item in pack.objects:
            annotations.append(_annotation(pack, item, len(annotations) + 1, image_id))
    return {
        "info": info(description, position, date_created),
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": categories(),
    }


def coco_files(
    packs: Sequence[ScenePack], description: str, position: str, date_created: str
) -> dict[str, bytes]:
    """``annotations/instances.json`` and ``images/<scene_id>.<ext>``."""
    document = coco_document(packs, description, position, date_created)
    files = {"annotations/instances.json": msgspec.json.format(msgspec.json.encode(document))}
    for pack in packs:
        assert pack.image is not None, "the COCO format carries images"
        files[f"images/{pack.file_name}"] = pack.image
    return files
