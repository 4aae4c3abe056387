"""Statistics over the read models."""

from __future__ import annotations

from litestar import Controller, get
from litestar.exceptions import NotFoundException

from modomo.api.services import Services
from modomo.read import stats


class StatsController(Controller):
    path = "/stats"
    tags = ["stats"]

    @get("/overview", opt={"role": "viewer"}, summary="Counts across the whole product")
    async def overview(self, svc: Services) -> stats.Overview:
        return await stats.overview(svc.db)

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
        return await stats.distribution(svc.db, kind, dataset_id)
