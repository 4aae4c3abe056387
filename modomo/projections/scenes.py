"""The scenes projector: ``scenes``, ``scene_styles``, ``objects``, ``object_materials``.

Per batch: load every touched scene's rows, fold the batch with the pure functions of
:mod:`modomo.domain.views`, write the scenes back (one upsert, then each child table's rows
of those scenes deleted and copied in again).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, ClassVar

import asyncpg
import msgspec

from modomo.domain.events import (
    ObjectCorrected,
    SceneEvent,
    SceneQueued,
    SceneRequeued,
    ScenesRegistered,
)
from modomo.domain.views import (
    MaterialRow,
    ObjectRow,
    SceneRow,
    SceneView,
    StyleRow,
    Unapplicable,
    apply_scene_view,
    register,
)
from modomo.projections.projector import LogEntry, Parked, Projector, event_type_of
from modomo.projections.tables import replace_children, upsert

SCENE_COLUMNS = tuple(SceneRow.__struct_fields__)
STYLE_COLUMNS = tuple(StyleRow.__struct_fields__)
OBJECT_COLUMNS = tuple(ObjectRow.__struct_fields__)
MATERIAL_COLUMNS = tuple(MaterialRow.__struct_fields__)
_astuple = msgspec.structs.astuple


CACHED_SCENES = 10_000
"""Scenes whose rows the projector keeps in memory between batches (most recent)."""


class ScenesProjector(Projector):
    """Scenes, styles, objects and materials.

    The views of recently written scenes stay in memory, since a scene's events arrive
    over a few seconds and so across neighbouring batches. The cache is only ever what
    this (single active) instance committed; it is dropped whenever a batch fails, the
    connection is renewed, or the checkpoint moved under us (a replay swapped tables).
    """

    name = "scenes"
    tables: ClassVar[tuple[str, ...]] = ("scenes", "scene_styles", "objects", "object_materials")

    def __init__(self) -> None:
        self._cache: OrderedDict[str, SceneView] = OrderedDict()

    def reset(self) -> None:
        self._cache.clear()

    async def apply(
        self, conn: asyncpg.Connection[Any], entries: Sequence[LogEntry]
    ) -> list[Parked]:
        touched: set[str] = set()
        for entry in entries:
            event = entry.event
            if isinstance(event, ScenesRegistered):
                touched.update(s.scene_id for s in event.scenes)
            elif isinstance(event, SceneEvent | SceneQueued | SceneRequeued | ObjectCorrected):
                touched.add(event.scene_id)
        if not touched:
            return []
        views = {sid: self._cache[sid] for sid in touched if sid in self._cache}
        if len(views) < len(touched):
            views.update(await load_views(conn, touched - views.keys()))
        loaded = set(views)
        changed: set[str] = set()
        parked: list[Parked] = []
        for entry in entries:
            event = entry.event
            if isinstance(event, ScenesRegistered):
                for scene in event.scenes:
                    views[scene.scene_id] = register(
                        views.get(scene.scene_id), event.dataset_id, scene, event.at, event.org
                    )
                    changed.add(scene.scene_id)
            elif isinstance(event, SceneEvent | SceneQueued | SceneRequeued | ObjectCorrected):
                view = views.get(event.scene_id)
                if view is None:
                    parked.append(
                        Parked(
                            entry.entry_id,
                            event_type_of(entry),
                            f"scene {event.scene_id} is not registered",
                            entry.raw,
                        )
                    )
                    continue
                try:
                    apply_scene_view(view, event)
                except Unapplicable as exc:
                    parked.append(Parked(entry.entry_id, event_type_of(entry), str(exc), entry.raw))
                    continue
                changed.add(event.scene_id)
        await store_views(conn, [views[s] for s in sorted(changed)], loaded)
        for scene_id in changed:
            self._cache[scene_id] = views[scene_id]
            self._cache.move_to_end(scene_id)
        while len(self._cache) > CACHED_SCENES:
            self._cache.popitem(last=False)
        return parked


async def load_views(conn: asyncpg.Connection[Any], scene_ids: set[str]) -> dict[str, SceneView]:
    ids = list(scene_ids)
    rows = await conn.fetch(
        f"SELECT {', '.join(SCENE_COLUMNS)} FROM scenes WHERE scene_id = ANY($1::text[])", ids
    )
    views = {r["scene_id"]: SceneView(row=SceneRow(**dict(r))) for r in rows}
    if not views:
        return views
    ids = list(views)
    for r in await conn.fetch(
        f"SELECT {', '.join(STYLE_COLUMNS)} FROM scene_styles WHERE scene_id = ANY($1::text[])", ids
    ):
        views[r["scene_id"]].styles[r["style_code"]] = StyleRow(**dict(r))
    for r in await conn.fetch(
        f"SELECT {', '.join(OBJECT_COLUMNS)} FROM objects WHERE scene_id = ANY($1::text[])", ids
    ):
        views[r["scene_id"]].objects[r["object_id"]] = ObjectRow(**dict(r))
    for r in await conn.fetch(
        f"SELECT {', '.join(MATERIAL_COLUMNS)} FROM object_materials "
        "WHERE scene_id = ANY($1::text[])",
        ids,
    ):
        views[r["scene_id"]].materials[(r["object_id"], r["material_code"])] = MaterialRow(
            **dict(r)
        )
    return views


async def store_views(
    conn: asyncpg.Connection[Any], views: Sequence[SceneView], loaded: set[str]
) -> None:
    """Upsert the scenes' rows; rewrite only the child rows that changed.

    ``loaded`` holds the scenes that were read from the tables: only they can have old
    child rows to delete.
    """
    if not views:
        return
    await upsert(conn, "scenes", ("scene_id",), SCENE_COLUMNS, (_astuple(v.row) for v in views))
    for part, table, cols in (
        ("styles", "scene_styles", STYLE_COLUMNS),
        ("objects", "objects", OBJECT_COLUMNS),
        ("materials", "object_materials", MATERIAL_COLUMNS),
    ):
        dirty = [v for v in views if part in v.touched]
        if not dirty:
            continue
        old = [v.row.scene_id for v in dirty if v.row.scene_id in loaded]
        # Child rows take their scene's organisation (row-level security reads each
        # table's own column, so a table swapped in alone by a replay stays scoped).
        rows = ((*_astuple(r), v.row.org_id) for v in dirty for r in getattr(v, part).values())
        await replace_children(conn, table, "scene_id", old, (*cols, "org_id"), rows)
    for view in views:
        view.touched.clear()
