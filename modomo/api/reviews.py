"""Reviews: verdicts on scenes and objects."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.exceptions import NotFoundException

from modomo.api.auth import caller_of
from modomo.api.schemas import Accepted, ReviewIn, ReviewOut
from modomo.api.services import Services, not_found
from modomo.domain.events import ReviewSubmitted, new_id

_COLUMNS = "review_id, scene_id, object_id, verdict, note, reviewer, created_at"


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
        if not await svc.db.fetchval("SELECT 1 FROM scenes WHERE scene_id = $1", data.scene_id):
            raise not_found("scene", data.scene_id)
        if data.object_id is not None:
            owner = await svc.db.fetchval(
                "SELECT scene_id FROM objects WHERE object_id = $1", data.object_id
            )
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
        )
        appended = await svc.append([event])
        late = await svc.unapplied("reviews", event.event_id, appended.log_ids[0])
        if late is not None:
            return late
        row = await svc.db.fetchrow(
            f"SELECT {_COLUMNS} FROM reviews WHERE review_id = $1", event.review_id
        )
        assert row is not None  # the projection has applied it
        return Response(ReviewOut(**dict(row)), status_code=201)

    @get("/", opt={"role": "viewer"}, summary="Reviews of a scene, newest first")
    async def list_reviews(self, scene_id: str, svc: Services) -> list[ReviewOut]:
        rows = await svc.db.fetch(
            f"SELECT {_COLUMNS} FROM reviews WHERE scene_id = $1 "
            "ORDER BY created_at DESC, review_id",
            scene_id,
        )
        return [ReviewOut(**dict(r)) for r in rows]
