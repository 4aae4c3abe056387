"""Parquet: one row per object with its scene's fields, for pandas, DuckDB and friends.

A scene without objects still gets one row, with the object columns null, so no scene is
missing from the table (``count(object_id)`` counts objects). Boxes are fractions of the
image; ``mask_rle`` is the object's mask as COCO compressed RLE at the pipeline's frame
(``width`` by ``height``), decodable with ``pycocotools.mask.decode``. ``attrs`` is JSON
text. The export's manifest rides in the file's schema metadata under ``modomo``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import msgspec

from modomo.export.coco import rle
from modomo.export.pack import ObjectPack, ScenePack

_SCORED = [("code", "string"), ("score", "float64")]


def _schema() -> Any:
    import pyarrow as pa

    scored = pa.list_(pa.struct([pa.field(n, t) for n, t in _SCORED]))
    colour = pa.list_(
        pa.struct(
            [
                pa.field("hex", pa.string()),
                pa.field("lab", pa.list_(pa.float64())),
                pa.field("share", pa.float64()),
            ]
        )
    )
    text, real, whole = pa.string(), pa.float64(), pa.int64()
    return pa.schema(
        [
            ("dataset_id", text),
            ("scene_id", text),
            ("filename", text),
            ("r2_key_original", text),
            ("content_type", text),
            ("size_bytes", whole),
            ("width", whole),
            ("height", whole),
            ("status", text),
            ("scene_type", text),
            ("scene_type_confidence", real),
            ("scene_type_model", text),
            ("styles", scored),
            ("style_model", text),
            ("caption", text),
            ("caption_model", text),
            ("palette", colour),
            ("palette_model", text),
            ("depth_key", text),
            ("depth_model", text),
            ("scene_verdict", text),
            ("object_id", text),
            ("category", text),
            ("confidence", real),
            ("bbox_x0", real),
            ("bbox_y0", real),
            ("bbox_x1", real),
            ("bbox_y1", real),
            ("source", text),
            ("model", text),
            ("label", text),
            ("mask_key", text),
            ("mask_rle", text),
            ("area", real),
            ("segment_model", text),
            ("materials", scored),
            ("material_model", text),
            ("attrs", text),
            ("corrected_by", text),
            ("verdict", text),
        ]
    )


def _scene_fields(pack: ScenePack) -> dict[str, Any]:
    row = pack.view.row
    return {
        "dataset_id": row.dataset_id,
        "scene_id": row.scene_id,
        "filename": row.filename,
        "r2_key_original": row.r2_key_original,
        "content_type": row.content_type,
        "size_bytes": row.size_bytes,
        "width": row.width,
        "height": row.height,
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
        "palette": row.palette,
        "palette_model": row.palette_model,
        "depth_key": row.depth_key,
        "depth_model": row.depth_model,
        "scene_verdict": pack.verdict,
    }


def _object_fields(item: ObjectPack) -> dict[str, Any]:
    obj = item.row
    x0, y0, x1, y1 = obj.bbox
    return {
        "object_id": obj.object_id,
        "category": obj.category_code,
        "confidence": obj.confidence,
        "bbox_x0": x0,
        "bbox_y0": y0,
        "bbox_x1": x1,
        "bbox_y1": y1,
        "source": obj.source,
        "model": obj.model,
        "label": obj.label,
        "mask_key": obj.mask_key,
        "mask_rle": msgspec.json.encode(rle(item.mask)).decode() if item.mask is not None else None,
        "area": obj.area,
        "segment_model": obj.segment_model,
        "materials": [{"code": m.material_code, "score": m.score} for m in item.materials],
        "material_model": item.materials[0].model if item.materials else None,
        "attrs": msgspec.json.encode(dict(sorted(obj.attrs.items()))).decode(),
        "corrected_by": obj.corrected_by,
        "verdict": item.verdict,
    }


def parquet_files(packs: Sequence[ScenePack], manifest: dict[str, Any]) -> dict[str, bytes]:
    """``objects.parquet``: every object of ``packs`` (scenes without one as a null row)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _schema()
    rows: list[dict[str, Any]] = []
    for pack in packs:
        scene = _scene_fields(pack)
        if not pack.objects:
            rows.append(scene)
        rows.extend({**scene, **_object_fields(item)} for item in pack.objects)
    columns = {name: [r.get(name) for r in rows] for name in schema.names}
    table = pa.table(columns, schema=schema).replace_schema_metadata(
        {"modomo": msgspec.json.encode(manifest)}
    )
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return {"objects.parquet": out.getvalue()}
