"""Evaluations: golden-set scores of jobs, as ``modomo eval`` recorded them."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get
from litestar.params import Parameter

from modomo.api.services import (
    CursorAfterTimeId,
    Services,
    not_found,
    parse_time_id_cursor,
    time_id_cursor,
)
from modomo.read.products import EvaluationOut, evaluation, evaluations


class EvaluationPage(msgspec.Struct, kw_only=True):
    items: list[EvaluationOut]
    next_cursor: str | None


class EvaluationController(Controller):
    path = "/evaluations"
    tags = ["evaluations"]

    @get(
        "/",
        opt={"role": "viewer"},
        summary="Evaluations newest first, with the change from the previous one of the set",
    )
    async def list_evaluations(
        self,
        svc: Services,
        golden_sha256: str | None = None,
        job_id: str | None = None,
        cursor: CursorAfterTimeId = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
    ) -> EvaluationPage:
        before = None
        if cursor:
            before = parse_time_id_cursor(cursor)
        rows = await evaluations(
            svc.db, golden_sha256=golden_sha256, job_id=job_id, before=before, limit=limit
        )
        last = rows[limit - 1] if len(rows) > limit else None
        return EvaluationPage(
            items=rows[:limit],
            next_cursor=None
            if last is None
            else time_id_cursor(last.created_at, last.evaluation_id),
        )

    @get("/{evaluation_id:str}", opt={"role": "viewer"}, summary="One evaluation")
    async def get_evaluation(self, evaluation_id: str, svc: Services) -> EvaluationOut:
        found = await evaluation(svc.db, evaluation_id)
        if found is None:
            raise not_found("evaluation", evaluation_id)
        return found
