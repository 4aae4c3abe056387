"""Scenes and objects: read them with links to their images, correct an object."""

from __future__ import annotations

from typing import Any

from litestar import Controller, MediaType, Request, Response, get, patch

from modomo.api.auth import caller_of
from modomo.api.bodies import link_object
from modomo.api.schemas import Accepted, ObjectPatch
from modomo.api.services import Services, not_found, origin
from modomo.domain.events import ObjectCorrected
from modomo.read import scenes
from modomo.read.scenes import ObjectOut, SceneOut


async def object_out(svc: Services, base: str, object_id: str) -> ObjectOut:
    found = await scenes.object_(svc.db, object_id)
    if found is None:
        raise not_found("object", object_id)
    return link_object(svc.links.linker(base), found)


class SceneController(Controller):
    path = "/scenes"
    tags = ["scenes"]

    @get(
        "/{scene_id:str}",
        opt={"role": "viewer"},
        summary="A scene with styles, palette, caption, depth and objects; links to images",
        description="Image URLs (original, depth, masks, thumbnails) are links to "
        "`GET /media/...` of this API, valid for at least `MODOMO_PRESIGN_TTL_S`; each "
        "redirects to a presigned URL of the bucket.",
    )
    async def get_scene(
        self, scene_id: str, request: Request[Any, Any, Any], svc: Services
    ) -> Response[SceneOut]:
        found = await svc.scenes.document(svc.db, scene_id)
        if found is None:
            raise not_found("scene", scene_id)
        body = svc.bodies.body(scene_id, found, svc.links.linker(origin(request.scope)))
        return Response(body, media_type=MediaType.JSON)  # type: ignore[arg-type]


class ObjectController(Controller):
    path = "/objects"
    tags = ["objects"]

    @get("/{object_id:str}", opt={"role": "viewer"}, summary="One object with its materials")
    async def get_object(
        self, object_id: str, request: Request[Any, Any, Any], svc: Services
    ) -> ObjectOut:
        return await object_out(svc, origin(request.scope), object_id)

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
        scene_id = await scenes.object_scene(svc.db, object_id)
        dataset_id = None if scene_id is None else await scenes.scene_dataset(svc.db, scene_id)
        if scene_id is None or dataset_id is None:
            raise not_found("object", object_id)
        if (
            data.category is None
            and data.materials is None
            and data.bbox is None
            and data.attrs is None
        ):
            return Response(
                await object_out(svc, origin(request.scope), object_id), status_code=200
            )
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
            org=caller_of(request).org,
            dataset_id=dataset_id,
        )
        appended = await svc.append([event])
        late = await svc.unapplied("scenes", event.event_id, appended.log_ids[0])
        if late is not None:
            return late
        return Response(await object_out(svc, origin(request.scope), object_id), status_code=200)
