"""The embeddings projector: CLIP embeddings of scenes and object crops into ``embeddings``.

Where PostgreSQL has pgvector, ``vec`` is a ``vector`` and this projector keeps one HNSW
index (cosine distance) per kind and dimension, made the first time it meets one: HNSW
needs a fixed dimension, and a deployment's CLIP model fixes it (64 for the tiny test
model, 768 for ViT-L/14). Partial indexes per kind keep a scene query from wading through
the far more numerous object crops. Without pgvector the table keeps the float16 bytes as
they came (``bytea``), so nothing is lost and the rest of the system runs as before; the
similarity routes say what is missing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import asyncpg
import structlog

from modomo.domain.events import (
    Embedding,
    MaterialsClassified,
    SceneClassified,
    ScenesRegistered,
)
from modomo.domain.orgs import DEFAULT_ORG
from modomo.projections.db import quote
from modomo.projections.projector import LogEntry, Parked, Projector
from modomo.read.similarity import vector_schema

log = structlog.get_logger("modomo.projector.embeddings")


def vector_text(embedding: Embedding) -> str:
    """pgvector's text form of the embedding."""
    return "[" + ",".join(repr(v) for v in embedding.floats()) + "]"


class EmbeddingsProjector(Projector):
    name = "embeddings"
    tables: ClassVar[tuple[str, ...]] = ("embeddings", "embedding_scene_orgs")
    interest: ClassVar[frozenset[str] | None] = frozenset(
        {"scene_classified", "materials_classified", "scenes_registered"}
    )
    """Registrations too: a stage event names its scene, not its organisation, and this
    projector keeps its own scene → org table rather than read the scenes projector's
    (which may lag behind it, or be rebuilt apart from it)."""

    def __init__(self) -> None:
        self._vector: str | None = None
        self._indexed: set[tuple[str, int]] = set()

    def reset(self) -> None:
        self._indexed.clear()

    async def prepare(self, conn: asyncpg.Connection[Any]) -> None:
        self.reset()
        self._vector = await vector_schema(conn)
        if self._vector is None:
            log.warning(
                "embeddings_without_pgvector",
                detail="PostgreSQL has no pgvector: embeddings are kept as bytes and "
                "similarity search is off until pgvector is installed and "
                "`modomo replay embeddings` runs",
            )

    async def apply(
        self, conn: asyncpg.Connection[Any], entries: Sequence[LogEntry]
    ) -> list[Parked]:
        rows: dict[tuple[str, str], tuple[Any, ...]] = {}
        orgs: dict[str, str] = {}
        for entry in entries:
            event = entry.event
            if isinstance(event, ScenesRegistered):
                for scene in event.scenes:
                    orgs.setdefault(scene.scene_id, event.org)
            elif isinstance(event, SceneClassified) and event.embedding is not None:
                rows["scene", event.scene_id] = (
                    "scene",
                    event.scene_id,
                    event.scene_id,
                    event.model.id,
                    event.embedding,
                    event.at,
                )
            elif isinstance(event, MaterialsClassified):
                for item in event.objects:
                    if item.embedding is not None:
                        rows["object", item.object_id] = (
                            "object",
                            item.object_id,
                            event.scene_id,
                            event.model.id,
                            item.embedding,
                            event.at,
                        )
        if orgs:
            # A scene's first registration fixes its organisation.
            await conn.executemany(
                "INSERT INTO embedding_scene_orgs (scene_id, org_id) VALUES ($1, $2) "
                "ON CONFLICT DO NOTHING",
                sorted(orgs.items()),
            )
        if not rows:
            return []
        scene_org = {
            r["scene_id"]: r["org_id"]
            for r in await conn.fetch(
                "SELECT scene_id, org_id FROM embedding_scene_orgs "
                "WHERE scene_id = ANY($1::text[])",
                sorted({r[2] for r in rows.values()}),
            )
        }
        ext = self._vector
        if ext is None:
            value = "$6"
            records = [
                (*r[:4], r[4].dim, r[4].f16, r[5], scene_org.get(r[2], DEFAULT_ORG))
                for r in rows.values()
            ]
        else:
            value = f"$6::text::{quote(ext)}.vector"
            records = [
                (*r[:4], r[4].dim, vector_text(r[4]), r[5], scene_org.get(r[2], DEFAULT_ORG))
                for r in rows.values()
            ]
            for kind, dim in sorted({(r[0], r[4].dim) for r in rows.values()} - self._indexed):
                await conn.execute(
                    f"CREATE INDEX IF NOT EXISTS embeddings_hnsw_{kind}_{dim} ON embeddings "
                    f"USING hnsw ((vec::{quote(ext)}.vector({dim})) "
                    f"{quote(ext)}.vector_cosine_ops) WHERE kind = '{kind}' AND dim = {dim}"
                )
                self._indexed.add((kind, dim))
        await conn.executemany(
            "INSERT INTO embeddings (kind, item_id, scene_id, model, dim, vec, updated_at, org_id) "
            f"VALUES ($1, $2, $3, $4, $5, {value}, $7, $8) ON CONFLICT (kind, item_id) DO UPDATE "
            "SET org_id = EXCLUDED.org_id, scene_id = EXCLUDED.scene_id, "
            "model = EXCLUDED.model, dim = EXCLUDED.dim, "
            "vec = EXCLUDED.vec, updated_at = EXCLUDED.updated_at",
            records,
        )
        return []
