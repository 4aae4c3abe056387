"""Reviews: verdicts on scenes and objects."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotFoundException

from modomo.api.auth import caller_of
from modomo.api.schemas import Accepted, ReviewIn
from modomo.api.services import Services, not_found
from modomo.domain.events import ReviewSubmitted, new_id
from modomo.read import reviews, scenes
from modomo.read.reviews import ReviewOut


class ReviewController(Controller):
    path = "/reviews"
    tags = ["reviews"]

    @post(
        "/",
        opt={"role": "reviewer"},
        status_code=201,
        raises=[NotFoundException],
        summary="Leave a verdict on a scene or one of its objects",
        description="A verdict on an object takes it out of its dataset's review queue.",
    )
    async def submit(
        self, data: ReviewIn, request: Request[Any, Any, Any], svc: Services
    ) -> Response[ReviewOut | Accepted]:
        dataset_id = await scenes.scene_dataset(svc.db, data.scene_id)
        if dataset_id is None:
            raise not_found("scene", data.scene_id)
        if data.object_id is not None:
            owner = await scenes.object_scene(svc.db, data.object_id)
            if owner != data.scene_id:
                raise NotFoundException(
                    f"object_id: no object {data.object_id!r} in scene {data.scene_id}"
                )
        event = ReviewSubmitted(
            review_id=new_id(),
            scene_id=data.scene_id,
            object_id=data.object_id,
            verdict=data.verdict,
            note=data.note,
            reviewer=caller_of(request).subject,
            org=caller_of(request).org,
            dataset_id=dataset_id,
        )
        appended = await svc.append([event])
        late = await svc.unapplied("reviews", event.event_id, appended.log_ids[0])
        if late is not None:
            return late
        found = await reviews.review(svc.db, event.review_id)
        assert found is not None  # the projection has applied it
        return Response(found, status_code=201)

    @get("/", opt={"role": "viewer"}, summary="Reviews of a scene, newest first")
    async def list_reviews(self, scene_id: str, svc: Services) -> list[ReviewOut]:
        return await reviews.reviews_of(svc.db, scene_id)
