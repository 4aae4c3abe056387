"""Similar scenes and objects, by their CLIP embeddings (pgvector, HNSW).

Without pgvector in PostgreSQL the routes answer 503 with a sentence saying what is
missing; the rest of the API is unaffected.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get
from litestar.exceptions import NotFoundException, ServiceUnavailableException
from litestar.params import Parameter

from modomo.api.services import Services, not_found
from modomo.read.similarity import (
    Kind,
    NoEmbedding,
    SimilarityUnavailable,
    SimilarPage,
    similar,
)
from modomo.read.sql import in_org

K = Annotated[int, Parameter(ge=1, le=100, description="how many neighbours")]
Exact = Annotated[bool, Parameter(description="skip the index: a full scan, the true nearest")]
_OWNER = {
    "scene": f"SELECT 1 FROM scenes s WHERE s.scene_id = $1 AND {in_org('s')}",
    "object": f"SELECT 1 FROM objects o WHERE o.object_id = $1 AND {in_org('o')}",
}


async def _similar(
    svc: Services,
    kind: Kind,
    item_id: str,
    k: int,
    dataset_id: str | None,
    category: str | None,
    status: str | None,
    exact: bool,
) -> SimilarPage:
    if not await svc.db.fetchval(_OWNER[kind], item_id):
        raise not_found(kind, item_id)
    async with svc.db.acquire() as conn:
        try:
            return await similar(
                conn,
                kind,
                item_id,
                k,
                dataset_id=dataset_id,
                category=category,
                status=status,
                exact=exact,
            )
        except SimilarityUnavailable as exc:
            raise ServiceUnavailableException(detail=str(exc)) from None
        except NoEmbedding as exc:
            raise NotFoundException(detail=str(exc)) from None


class SimilarityController(Controller):
    path = "/"
    tags = ["similarity"]

    @get(
        "/scenes/{scene_id:str}/similar",
        opt={"role": "viewer"},
        summary="Scenes whose images look most like this one (503 without pgvector)",
    )
    async def similar_scenes(
        self,
        scene_id: str,
        svc: Services,
        k: K = 10,
        dataset_id: str | None = None,
        status: str | None = None,
        exact: Exact = False,
    ) -> SimilarPage:
        return await _similar(svc, "scene", scene_id, k, dataset_id, None, status, exact)

    @get(
        "/objects/{object_id:str}/similar",
        opt={"role": "viewer"},
        summary="Objects whose crops look most like this one (503 without pgvector)",
    )
    async def similar_objects(
        self,
        object_id: str,
        svc: Services,
        k: K = 10,
        dataset_id: str | None = None,
        category: str | None = None,
        status: str | None = None,
        exact: Exact = False,
    ) -> SimilarPage:
        return await _similar(svc, "object", object_id, k, dataset_id, category, status, exact)
