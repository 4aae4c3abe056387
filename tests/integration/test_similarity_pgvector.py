"""Similarity search on a PostgreSQL with pgvector: pgserver's bundled server (PostgreSQL 16
with ``vector.so``), started here, since Debian's PostgreSQL 15 has no pgvector package.

Neighbours come back in the order exact cosine distance gives (checked with numpy on the
same float16 vectors), through the HNSW index, with filters, over HTTP, and after a
blue/green replay of the embeddings table.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np
import pytest
from redis.asyncio import Redis

from modomo.domain.events import (
    DatasetCreated,
    Detection,
    Embedding,
    EventBase,
    MaterialsClassified,
    ModelRef,
    ObjectMaterials,
    ObjectsDetected,
    RegisteredScene,
    SceneClassified,
    ScenesRegistered,
    Scored,
)
from modomo.projections import db
from modomo.projections.migrate import migrate
from modomo.projections.registry import select
from modomo.projections.replay import replay
from modomo.read.similarity import similar
from modomo.settings import Settings
from tests.integration.api_support import running_api
from tests.integration.conftest import fast_settings
from tests.integration.projection_support import project, publish

pytestmark = pytest.mark.integration

MODEL = ModelRef(id="clip-test", profile="test")
DIM = 24
SCENES = 40


@pytest.fixture(scope="module")
def pgvector_url() -> Iterator[str]:
    """A throwaway PostgreSQL with pgvector (pgserver runs it as its own user when root)."""
    import pgserver

    folder = Path(tempfile.mkdtemp(prefix="modomo-pgvector-"))
    server = pgserver.get_server(folder, cleanup_mode="delete")
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()


@pytest.fixture
async def vector_settings(pgvector_url: str, prefix: str) -> AsyncIterator[Settings]:
    settings = fast_settings(
        prefix,
        database_url=pgvector_url,
        db_schema=f"{prefix}_rm",
        db_log_schema=f"{prefix}_log",
        projector_batch=500,
    )
    conn = await asyncpg.connect(pgvector_url)
    try:
        await migrate(conn, settings.db_schema, settings.db_log_schema)
        yield settings
    finally:
        for schema in (f"{prefix}_rm", f"{prefix}_log", f"{prefix}_rm_shadow"):
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()


def _vectors(seed: int, n: int) -> np.ndarray:
    raw = np.random.default_rng(seed).normal(size=(n, DIM))
    raw[1] = raw[0] + 0.01 * raw[2]  # scene 1 is a near-copy of scene 0
    vectors: np.ndarray = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    return vectors


def _emb(vector: np.ndarray) -> Embedding:
    return Embedding.of([float(v) for v in vector])


def _log(
    scene_vectors: np.ndarray, object_vectors: np.ndarray
) -> tuple[list[EventBase], dict[str, Any]]:
    """Two datasets; each scene has one object, of a category that alternates."""
    ids = [str(uuid.UUID(int=i + 1)) for i in range(len(scene_vectors))]
    datasets = ["d-even", "d-odd"]
    events: list[EventBase] = [DatasetCreated(dataset_id=d, name=d) for d in datasets]
    for parity, dataset in enumerate(datasets):
        events.append(
            ScenesRegistered(
                dataset_id=dataset,
                scenes=tuple(
                    RegisteredScene(scene_id=s, r2_key_original=f"scenes/{s}.jpg")
                    for i, s in enumerate(ids)
                    if i % 2 == parity
                ),
            )
        )
    objects = {}
    for i, scene_id in enumerate(ids):
        common = {"job_id": "job", "scene_id": scene_id}
        object_id = f"o-{i}"
        category = "sofa" if i % 3 else "lamp"
        objects[object_id] = (scene_id, category)
        events += [
            SceneClassified(
                **common,
                model=MODEL,
                scene_type="bedroom",
                confidence=0.5,
                embedding=_emb(scene_vectors[i]),
            ),
            ObjectsDetected(
                **common,
                model=MODEL,
                objects=(
                    Detection(
                        object_id=object_id,
                        category=category,
                        confidence=0.5,
                        bbox=(0.1, 0.1, 0.5, 0.5),
                    ),
                ),
            ),
            MaterialsClassified(
                **common,
                model=MODEL,
                objects=(
                    ObjectMaterials(
                        object_id=object_id,
                        materials=(Scored(code="wood", score=1.0),),
                        embedding=_emb(object_vectors[i]),
                    ),
                ),
            ),
        ]
    return events, {"scenes": ids, "objects": objects, "datasets": datasets}


def _exact(vectors: np.ndarray, i: int, allowed: list[int], k: int) -> list[int]:
    """Neighbours by cosine distance over the float16 values the events carry."""
    half = vectors.astype(np.float16).astype(np.float64)
    half /= np.linalg.norm(half, axis=1, keepdims=True)
    distance = 1 - half[allowed] @ half[i]
    order = sorted(range(len(allowed)), key=lambda j: (round(float(distance[j]), 5), allowed[j]))
    return [allowed[j] for j in order][:k]


async def test_neighbours_follow_exact_cosine_order_through_the_hnsw_index(
    vector_settings: Settings, redis: Redis
) -> None:
    scene_vectors, object_vectors = _vectors(1, SCENES), _vectors(2, SCENES)
    events, made = _log(scene_vectors, object_vectors)
    last = await publish(redis, vector_settings, events)
    await project(redis, vector_settings, last, ["archive", "datasets", "scenes", "embeddings"])
    scenes = made["scenes"]
    conn = await db.connect(vector_settings)
    await conn.execute("SELECT set_config('modomo.org', 'default', false)")  # as OrgScope
    try:
        indexes = {
            r["indexname"]
            for r in await conn.fetch(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'embeddings'"
            )
        }
        assert {f"embeddings_hnsw_scene_{DIM}", f"embeddings_hnsw_object_{DIM}"} <= indexes
        page = await similar(conn, "scene", scenes[0], 5)
        others = [i for i in range(SCENES) if i != 0]
        assert [s.scene_id for s in page.items] == [
            scenes[j] for j in _exact(scene_vectors, 0, others, 5)
        ]
        assert (page.model, page.dim, page.exact) == ("clip-test", DIM, False)
        assert page.items[0].scene_id == scenes[1]
        assert page.items[0].near_duplicate
        assert not page.items[1].near_duplicate

        odd = await similar(conn, "scene", scenes[0], 4, dataset_id="d-odd")
        odds = [i for i in range(SCENES) if i % 2 == 1]
        assert [s.scene_id for s in odd.items] == [
            scenes[j] for j in _exact(scene_vectors, 0, odds, 4)
        ]

        lamps = await similar(conn, "object", "o-3", 6, category="lamp")
        lamp_ids = [i for i in range(SCENES) if i % 3 == 0 and i != 3]
        assert [o.object_id for o in lamps.items] == [
            f"o-{j}" for j in _exact(object_vectors, 3, lamp_ids, 6)
        ]
        assert {o.category for o in lamps.items} == {"lamp"}
        sofas = await similar(conn, "object", "o-0", 30, category="sofa")
        assert sofas.exact
        assert len(sofas.items) == 26

        await conn.execute("SET enable_seqscan = off")
        probe = "[" + ",".join(str(float(v)) for v in scene_vectors[0]) + "]"
        rows = await conn.fetch(
            f"EXPLAIN SELECT item_id FROM embeddings WHERE kind = 'scene' AND dim = {DIM} "
            f"ORDER BY (vec::public.vector({DIM})) OPERATOR(public.<=>) "
            f"'{probe}'::public.vector({DIM}) LIMIT 5"
        )
        plan = "\n".join(r[0] for r in rows)
        assert f"embeddings_hnsw_scene_{DIM}" in plan
    finally:
        await conn.close()

    result = await replay(vector_settings, select(["embeddings"]))
    assert result.swapped
    conn = await db.connect(vector_settings)
    await conn.execute("SELECT set_config('modomo.org', 'default', false)")  # as OrgScope
    try:
        again = await similar(conn, "scene", scenes[0], 5)
        assert again == page
        indexes = {
            r["indexname"]
            for r in await conn.fetch(
                "SELECT indexname FROM pg_indexes WHERE tablename = 'embeddings'"
            )
        }
        assert f"embeddings_hnsw_scene_{DIM}" in indexes
    finally:
        await conn.close()


async def test_similar_routes_answer_over_http_with_pgvector(
    vector_settings: Settings, redis: Redis, s3_endpoint: str
) -> None:
    events, made = _log(_vectors(3, 10), _vectors(4, 10))
    await publish(redis, vector_settings, events)
    async with running_api(vector_settings, s3_endpoint) as api, api.client("viewer") as client:
        from tests.integration.support import wait_for

        scene = made["scenes"][0]

        async def answered() -> bool:
            found = await client.get(f"/scenes/{scene}/similar", params={"k": 3})
            return found.status_code == 200 and len(found.json()["items"]) == 3

        await wait_for(answered, what="similar scenes over HTTP")
        body = (await client.get(f"/scenes/{scene}/similar", params={"k": 3})).json()
        assert body["items"][0]["scene_id"] == made["scenes"][1]
        assert body["items"][0]["near_duplicate"] is True
        objects = (await client.get("/objects/o-0/similar", params={"category": "sofa"})).json()
        assert objects["items"]
        assert {o["category"] for o in objects["items"]} == {"sofa"}
        missing = await client.get(f"/scenes/{uuid.uuid4()}/similar")
        assert missing.status_code == 404
