"""Statistics over the read models."""

from __future__ import annotations

from litestar import Controller, get
from litestar.exceptions import NotFoundException

from modomo.api.services import Services
from modomo.projections import stats


class StatsController(Controller):
    path = "/stats"
    tags = ["stats"]

    @get("/overview", opt={"role": "viewer"}, summary="Counts across the whole product")
    async def overview(self, svc: Services) -> stats.Overview:
        async with svc.db.acquire() as conn:
            return await stats.overview(conn)

    @get(
        "/distribution/{kind:str}",
        opt={"role": "viewer"},
        summary="Counts per scene type, style, material, category, colour or confidence bin",
    )
    async def distribution(
        self, kind: str, svc: Services, dataset_id: str | None = None
    ) -> list[stats.Bucket]:
        if kind not in stats.KINDS:
            raise NotFoundException(
                f"unknown distribution {kind!r}; one of: {', '.join(stats.KINDS)}"
            )
        async with svc.db.acquire() as conn:
            return await stats.distribution(conn, kind, dataset_id)
