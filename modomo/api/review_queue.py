"""The review queue of a dataset: objects in the order a reviewer's time helps most."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get
from litestar.params import Parameter

from modomo.api.services import Services, not_found, origin
from modomo.read import datasets
from modomo.read import review_queue as queue


class ReviewQueueController(Controller):
    path = "/datasets"
    tags = ["reviews"]

    @get(
        "/{dataset_id:str}/review-queue",
        opt={"role": "viewer"},
        summary="Objects waiting for review, most useful first (active learning)",
        description="Lowest confidence first (to two decimals), then objects the two "
        "detectors (YOLO, GroundingDINO) named differently, then the smallest margin between "
        "the top two materials; the object id breaks ties. An object leaves the queue once a "
        "review (POST /reviews with its object_id, any verdict) names it. Keyset-paged: pass "
        "`next_cursor` back as `cursor`.",
    )
    async def review_queue(
        self,
        dataset_id: str,
        request: Request[Any, Any, Any],
        svc: Services,
        cursor: Annotated[
            str | None,
            Parameter(
                pattern=queue.CURSOR_PATTERN,
                description="`next_cursor` of the previous page: "
                "`<confidence bin>~<agree 0|1>~<margin key>~<object id>`",
            ),
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=500, description="page size")] = 50,
    ) -> queue.QueuePage:
        if not await datasets.dataset_exists(svc.db, dataset_id):
            raise not_found("dataset", dataset_id)
        page = await queue.review_queue(svc.db, dataset_id, limit, cursor)
        link = svc.links.linker(origin(request.scope))  # links, not presigns: see links.py
        for item in page.items:
            item.thumb_url = link(item.thumb_key)
        return page
