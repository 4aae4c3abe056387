"""Scenes and objects: read them with presigned URLs, correct an object."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, patch

from modomo.api.auth import caller_of
from modomo.api.schemas import (
    Accepted,
    MaterialOut,
    ModelRefOut,
    ObjectOut,
    ObjectPatch,
    SceneOut,
    StyleOut,
)
from modomo.api.services import Services, not_found
from modomo.domain.events import ObjectCorrected
from modomo.projections.scenes import OBJECT_COLUMNS

_MODEL_COLUMNS = (
    "scene_type_model",
    "style_model",
    "detect_model",
    "label_model",
    "segment_model",
    "depth_model",
    "material_model",
    "caption_model",
    "palette_model",
)


async def _objects(svc: Services, where: str, arg: str) -> list[ObjectOut]:
    rows = await svc.db.fetch(
        f"SELECT {', '.join(OBJECT_COLUMNS)} FROM objects WHERE {where} = $1 "
        "ORDER BY confidence DESC, object_id",
        arg,
    )
    if not rows:
        return []
    materials: dict[str, list[MaterialOut]] = {}
    for m in await svc.db.fetch(
        "SELECT object_id, material_code, score, model FROM object_materials "
        "WHERE object_id = ANY($1::text[]) ORDER BY score DESC, material_code",
        [r["object_id"] for r in rows],
    ):
        materials.setdefault(m["object_id"], []).append(
            MaterialOut(code=m["material_code"], score=m["score"], model=m["model"])
        )
    out = []
    for r in rows:
        values = dict(r)
        values["category"] = values.pop("category_code")
        values.pop("segment_model")
        out.append(
            ObjectOut(
                **values,
                materials=materials.get(r["object_id"], []),
                mask_url=await svc.presign_get(r["mask_key"]),
                thumb_url=await svc.presign_get(r["thumb_key"]),
            )
        )
    return out


async def object_out(svc: Services, object_id: str) -> ObjectOut:
    found = await _objects(svc, "object_id", object_id)
    if not found:
        raise not_found("object", object_id)
    return found[0]


class SceneController(Controller):
    path = "/scenes"
    tags = ["scenes"]

    @get(
        "/{scene_id:str}",
        opt={"role": "viewer"},
        summary="A scene with styles, palette, caption, depth and objects; presigned URLs",
    )
    async def get_scene(self, scene_id: str, svc: Services) -> SceneOut:
        row = await svc.db.fetchrow("SELECT * FROM scenes WHERE scene_id = $1", scene_id)
        if row is None:
            raise not_found("scene", scene_id)
        styles = [
            StyleOut(code=r["style_code"], score=r["score"], model=r["model"])
            for r in await svc.db.fetch(
                "SELECT style_code, score, model FROM scene_styles WHERE scene_id = $1 "
                "ORDER BY score DESC, style_code",
                scene_id,
            )
        ]
        values = dict(row)
        models = {c.removesuffix("_model"): values.pop(c) for c in _MODEL_COLUMNS}
        refs = values.pop("model_refs") or {}
        return SceneOut(
            **{k: v for k, v in values.items() if k in SceneOut.__struct_fields__},
            models=models,
            model_refs={stage: ModelRefOut(**ref) for stage, ref in refs.items()},
            styles=styles,
            objects=await _objects(svc, "scene_id", scene_id),
            original_url=await svc.storage.presign_get(values["r2_key_original"]),
            depth_url=await svc.presign_get(values["depth_key"]),
        )


class ObjectController(Controller):
    path = "/objects"
    tags = ["objects"]

    @get("/{object_id:str}", opt={"role": "viewer"}, summary="One object with its materials")
    async def get_object(self, object_id: str, svc: Services) -> ObjectOut:
        return await object_out(svc, object_id)

    @patch(
        "/{object_id:str}",
        opt={"role": "reviewer"},
        summary="Correct an object (category, materials, box, attributes)",
        description="Appends an object_corrected event and answers once the read model "
        "shows it; past a short bound, 202 with the event id. An undo is a correction too: "
        "send the values the object had before.",
    )
    async def correct(
        self, object_id: str, data: ObjectPatch, request: Request[Any, Any, Any], svc: Services
    ) -> Response[ObjectOut | Accepted]:
        scene_id = await svc.db.fetchval(
            "SELECT scene_id FROM objects WHERE object_id = $1", object_id
        )
        if scene_id is None:
            raise not_found("object", object_id)
        if (
            data.category is None
            and data.materials is None
            and data.bbox is None
            and data.attrs is None
        ):
            return Response(await object_out(svc, object_id), status_code=200)
        bbox = data.bbox
        if bbox is not None:  # two opposite corners, in whichever order they were clicked
            x0, y0, x1, y1 = bbox
            bbox = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        event = ObjectCorrected(
            object_id=object_id,
            scene_id=scene_id,
            category=data.category,
            materials=tuple(data.materials) if data.materials is not None else None,
            bbox=bbox,
            attrs=data.attrs,
            corrected_by=caller_of(request).subject,
        )
        appended = await svc.append([event])
        late = await svc.unapplied("scenes", event.event_id, appended.log_ids[0])
        if late is not None:
            return late
        return Response(await object_out(svc, object_id), status_code=200)
