"""Scenes and their objects: one scene with everything a reviewer sees, one object, and a
dataset's scenes page by page.

A scene comes back from PostgreSQL as one JSON document (styles, objects and their
materials nested), built by one query and decoded by msgspec straight into
:class:`SceneOut`. Building it costs PostgreSQL ten times a primary-key read, so
:class:`SceneReader` keeps recent documents with the scene's ``updated_at`` (which every
applied scene event, corrections included, moves) and asks PostgreSQL for the document
only when that has changed: one round trip either way. A kept document is also renewed
after ``ttl_s``, so two changes stamped with the same microsecond are never hidden long.

The select lists are generated from the shapes' fields, so a new
output field whose column has the same name needs no query change; a field fed by a
column of another name, or by an expression, is listed in the ``renamed`` arguments.
URL fields come back empty: the caller links them (signing is not the read side's job).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from time import monotonic
from typing import Any

import msgspec

from modomo.read.sql import Conn, Params, columns_of, in_org, json_array, remember, select_list


class MaterialOut(msgspec.Struct, kw_only=True, gc=False):
    code: str
    score: float
    model: str


class StyleOut(msgspec.Struct, kw_only=True, gc=False):
    code: str
    score: float
    model: str


class ObjectOut(msgspec.Struct, kw_only=True, gc=False):
    object_id: str
    scene_id: str
    category: str
    confidence: float
    bbox: list[float]
    label: str
    source: str
    model: str
    mask_key: str | None
    thumb_key: str | None
    area: float | None
    attrs: dict[str, Any]
    corrected_by: str | None
    corrected_at: datetime | None
    materials: list[MaterialOut]
    mask_url: str | None = None
    thumb_url: str | None = None
    detect_category: str | None = None
    """What the detector (YOLO) called it."""
    label_category: str | None = None
    """What the open-vocabulary labeller (GroundingDINO) called it."""
    material_margin: float | None = None
    """Top material score minus the runner-up's."""
    dataset_id: str | None = None


class ModelRefOut(msgspec.Struct, kw_only=True, gc=False):
    """Which model produced a stage's result."""

    id: str
    profile: str
    """``real`` (pulled weights) or ``tiny`` / ``full-random`` (random weights)."""
    digest: str = ""
    """``sha256:<hex>`` of the weights (empty where none were recorded)."""


class SceneOut(msgspec.Struct, kw_only=True, gc=False):
    scene_id: str
    dataset_id: str
    status: str
    last_job_id: str | None
    r2_key_original: str
    content_type: str
    size_bytes: int
    filename: str
    registered_at: datetime
    scene_type: str | None
    scene_type_conf: float | None
    width: int | None
    height: int | None
    depth_key: str | None
    depth_near: float | None
    depth_far: float | None
    caption: str | None
    palette: list[dict[str, Any]] | None
    object_count: int
    avg_conf: float
    models: dict[str, str | None]
    model_refs: dict[str, ModelRefOut] = msgspec.field(default_factory=dict)
    """Per stage with a result: the model's id, profile and weights digest."""
    styles: list[StyleOut]
    objects: list[ObjectOut]
    original_url: str
    depth_url: str | None
    updated_at: datetime | None


class SceneSummary(msgspec.Struct, kw_only=True, gc=False):
    scene_id: str
    dataset_id: str
    status: str
    scene_type: str | None
    scene_type_conf: float | None
    caption: str | None
    object_count: int
    avg_conf: float
    updated_at: datetime | None
    image_url: str | None = None
    """Where to fetch the scene's photo (for a grid of thumbnails)."""


class ScenePage(msgspec.Struct, kw_only=True, gc=False):
    items: list[SceneSummary]
    next_cursor: str | None


MODEL_STAGES = (
    "scene_type",
    "style",
    "detect",
    "label",
    "segment",
    "depth",
    "material",
    "caption",
    "palette",
)
"""Keys of ``SceneOut.models``: each from the scene's ``<stage>_model`` column."""

_MATERIALS = json_array(
    "SELECT m.material_code AS code, m.score, m.model FROM object_materials m "
    "WHERE m.object_id = o.object_id",
    "x.score DESC, x.code",
)
_OBJECT_COLUMNS = columns_of(
    ObjectOut.__struct_fields__,
    "o",
    category="o.category_code",
    materials=_MATERIALS,
    mask_url="NULL",
    thumb_url="NULL",
)
_OBJECTS_SELECT = f"SELECT {select_list(_OBJECT_COLUMNS)} FROM objects o"
_STYLES = json_array(
    "SELECT st.style_code AS code, st.score, st.model FROM scene_styles st "
    "WHERE st.scene_id = s.scene_id",
    "x.score DESC, x.code",
)
_MODELS = "json_build_object({})".format(
    ", ".join(f"'{stage}', s.{stage}_model" for stage in MODEL_STAGES)
)
_SCENE_COLUMNS = columns_of(
    SceneOut.__struct_fields__,
    "s",
    models=_MODELS,
    model_refs="coalesce(s.model_refs, '{}'::jsonb)",
    styles=_STYLES,
    objects=json_array(
        f"{_OBJECTS_SELECT} WHERE o.scene_id = s.scene_id", "x.confidence DESC, x.object_id"
    ),
    original_url="''",
    depth_url="NULL",
)
SCENE_QUERY = (
    f"SELECT row_to_json(x)::text FROM (SELECT {select_list(_SCENE_COLUMNS)} "
    f"FROM scenes s WHERE s.scene_id = $1 AND {in_org('s')}) x"
)
SCENE_IF_CHANGED_QUERY = (
    "SELECT s.updated_at, CASE WHEN s.updated_at IS NOT DISTINCT FROM $2 THEN NULL ELSE "
    f"(SELECT row_to_json(x) FROM (SELECT {select_list(_SCENE_COLUMNS)}) x)::text END AS doc "
    f"FROM scenes s WHERE s.scene_id = $1 AND {in_org('s')}"
)
"""The scene's version and, unless the caller's copy (``$2``) is current, its document."""
OBJECT_QUERY = (
    f"SELECT row_to_json(x)::text FROM ({_OBJECTS_SELECT} WHERE o.object_id = $1 "
    f"AND {in_org('o')}) x"
)
_SUMMARY_COLUMNS = select_list(columns_of(SceneSummary.__struct_fields__, "s", image_url="NULL"))

_scene = msgspec.json.Decoder(SceneOut)
_object = msgspec.json.Decoder(ObjectOut)
_summaries = msgspec.json.Decoder(list[SceneSummary])


async def scene(conn: Conn, scene_id: str) -> SceneOut | None:
    """The scene with its styles, objects and their materials (best first); None if
    there is no such scene."""
    found = await conn.fetchval(SCENE_QUERY, scene_id)
    return None if found is None else _scene.decode(found)


@dataclass(frozen=True, eq=False, slots=True)
class SceneDocument:
    """A scene's JSON as PostgreSQL built it, with its version. The same object comes back
    for as long as the scene is unchanged, so callers may key their own caches on it."""

    version: datetime | None
    at: float
    doc: bytes

    def scene(self) -> SceneOut:
        """A fresh Struct each time: callers may fill in its URLs."""
        return _scene.decode(self.doc)


class SceneReader:
    """Reads scenes, keeping the documents of the last ``max_scenes`` read (0: none)."""

    def __init__(
        self, max_scenes: int = 2000, ttl_s: float = 10.0, clock: Callable[[], float] = monotonic
    ) -> None:
        self.max_scenes = max_scenes
        self.ttl_s = ttl_s
        self._clock = clock
        self._kept: dict[str, SceneDocument] = {}

    async def scene(self, conn: Conn, scene_id: str) -> SceneOut | None:
        """As :func:`scene`, always as the read model has it now."""
        found = await self.document(conn, scene_id)
        return None if found is None else found.scene()

    async def document(self, conn: Conn, scene_id: str) -> SceneDocument | None:
        """The scene's document as the read model has it now (None: no such scene)."""
        now = self._clock()
        if not self.max_scenes:
            doc = await conn.fetchval(SCENE_QUERY, scene_id)
            return None if doc is None else SceneDocument(None, now, doc.encode())
        kept = self._kept.get(scene_id)
        if kept is not None and now - kept.at >= self.ttl_s:
            kept = None
        row = await conn.fetchrow(
            SCENE_IF_CHANGED_QUERY, scene_id, None if kept is None else kept.version
        )
        if row is None:
            self._kept.pop(scene_id, None)
            return None
        if row["doc"] is not None:
            kept = SceneDocument(row["updated_at"], now, row["doc"].encode())
            remember(self._kept, scene_id, kept, self.max_scenes)
        assert kept is not None  # the document came, or the kept one is current
        return kept


async def object_(conn: Conn, object_id: str) -> ObjectOut | None:
    found = await conn.fetchval(OBJECT_QUERY, object_id)
    return None if found is None else _object.decode(found)


async def object_scene(conn: Conn, object_id: str) -> str | None:
    """The scene an object belongs to (None when there is no such object)."""
    found: str | None = await conn.fetchval(
        f"SELECT o.scene_id FROM objects o WHERE o.object_id = $1 AND {in_org('o')}", object_id
    )
    return found


async def scene_exists(conn: Conn, scene_id: str) -> bool:
    return bool(
        await conn.fetchval(
            f"SELECT 1 FROM scenes s WHERE s.scene_id = $1 AND {in_org('s')}", scene_id
        )
    )


async def scene_dataset(conn: Conn, scene_id: str) -> str | None:
    """The dataset of the scene (None when the caller's organisation has no such scene)."""
    found: str | None = await conn.fetchval(
        f"SELECT s.dataset_id FROM scenes s WHERE s.scene_id = $1 AND {in_org('s')}", scene_id
    )
    return found


async def registered(conn: Conn, scene_ids: list[str]) -> dict[str, str]:
    """Which of ``scene_ids`` are registered, in any organisation: scene id -> its dataset.

    Deliberately unscoped (the API runs it on the owner's pool): a scene id is unique
    across organisations, and registering another organisation's scene must be refused,
    not mistaken for a new one."""
    rows = await conn.fetch(
        "SELECT scene_id, dataset_id FROM scenes WHERE scene_id = ANY($1::text[])", scene_ids
    )
    return {r["scene_id"]: r["dataset_id"] for r in rows}


async def originals(
    conn: Conn, dataset_id: str, scene_ids: list[str] | None
) -> dict[str, tuple[str, str]]:
    """Scene id -> (key of its original, its ETag, '' when unknown) for the dataset's
    scenes (or only ``scene_ids``)."""
    rows = await conn.fetch(
        "SELECT scene_id, r2_key_original, etag FROM scenes s WHERE s.dataset_id = $1 "
        f"AND {in_org('s')} AND ($2::text[] IS NULL OR scene_id = ANY($2::text[])) "
        "ORDER BY scene_id",
        dataset_id,
        scene_ids,
    )
    return {r["scene_id"]: (r["r2_key_original"], r["etag"]) for r in rows}


class SceneFilter(msgspec.Struct, kw_only=True, frozen=True):
    """What ``GET /datasets/:id/scenes`` can filter on (codes already validated)."""

    status: str | None = None
    scene_type: str | None = None
    style: str | None = None
    material: str | None = None
    category: str | None = None
    min_confidence: float | None = None


async def scenes_of(
    conn: Conn, dataset_id: str, where: SceneFilter, after: str | None, limit: int
) -> list[SceneSummary]:
    """Up to ``limit`` scenes of the dataset matching ``where``, by scene id, after the
    scene id ``after``."""
    clauses = ["s.dataset_id = $1", in_org("s")]
    arg = Params(dataset_id)
    if where.status:
        clauses.append(f"s.status = {arg(where.status)}")
    if where.scene_type:
        clauses.append(f"s.scene_type = {arg(where.scene_type)}")
    if where.style:
        clauses.append(
            "EXISTS (SELECT 1 FROM scene_styles st WHERE st.scene_id = "
            f"s.scene_id AND st.style_code = {arg(where.style)})"
        )
    if where.material:
        clauses.append(
            "EXISTS (SELECT 1 FROM object_materials m WHERE m.scene_id = "
            f"s.scene_id AND m.material_code = {arg(where.material)})"
        )
    if where.category or where.min_confidence is not None:
        inner = ["o.scene_id = s.scene_id"]
        if where.category:
            inner.append(f"o.category_code = {arg(where.category)}")
        if where.min_confidence is not None:
            inner.append(f"o.confidence >= {arg(where.min_confidence)}")
        clauses.append(f"EXISTS (SELECT 1 FROM objects o WHERE {' AND '.join(inner)})")
    if after is not None:
        clauses.append(f"s.scene_id > {arg(after)}")
    found = await conn.fetchval(
        "SELECT "
        + json_array(
            f"SELECT {_SUMMARY_COLUMNS} FROM scenes s WHERE {' AND '.join(clauses)} "
            f"ORDER BY s.scene_id LIMIT {arg(limit)}",
            "x.scene_id",
        )
        + "::text",
        *arg.values,
    )
    return _summaries.decode(found)
