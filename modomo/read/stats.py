"""Statistics for ``GET /stats/overview`` and ``GET /stats/distribution/:kind``.

Computed from the read-model tables (kept by the projectors, indexed for these queries),
never by scanning the log.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from modomo.read.sql import ORG, Conn

DistributionKind = Literal["scene_type", "style", "material", "category", "colour", "confidence"]
KINDS: tuple[str, ...] = ("scene_type", "style", "material", "category", "colour", "confidence")


class Overview(msgspec.Struct, frozen=True, kw_only=True):
    datasets: int
    scenes: int
    scenes_by_status: dict[str, int]
    objects: int
    corrected_objects: int
    jobs_by_status: dict[str, int]
    reviews: int
    avg_object_confidence: float | None


class Bucket(msgspec.Struct, frozen=True, kw_only=True):
    key: str
    count: int
    share: float


_QUERIES: dict[str, str] = {
    "scene_type": "SELECT scene_type AS key, count(*) AS n FROM scenes "
    "WHERE scene_type IS NOT NULL AND org_id = {org} {ds} GROUP BY 1",
    "style": "SELECT st.style_code AS key, count(*) AS n FROM scene_styles st "
    "JOIN scenes s USING (scene_id) WHERE s.org_id = {org} {ds} GROUP BY 1",
    "material": "SELECT m.material_code AS key, count(*) AS n FROM object_materials m "
    "JOIN scenes s USING (scene_id) WHERE s.org_id = {org} {ds} GROUP BY 1",
    "category": "SELECT o.category_code AS key, count(*) AS n FROM objects o "
    "JOIN scenes s USING (scene_id) WHERE s.org_id = {org} {ds} GROUP BY 1",
    "colour": "SELECT c->>'hex' AS key, count(*) AS n FROM scenes s, "
    "jsonb_array_elements(s.palette) c WHERE s.palette IS NOT NULL AND s.org_id = {org} "
    "{ds} GROUP BY 1",
    "confidence": "SELECT to_char(least(floor(o.confidence * 10), 9) / 10, 'FM0.0') AS key, "
    "count(*) AS n FROM objects o JOIN scenes s USING (scene_id) "
    "WHERE s.org_id = {org} {ds} GROUP BY 1",
}


async def overview(conn: Conn) -> Overview:
    """Counts across every read model (the caller's organisation's rows)."""
    row = await conn.fetchrow(
        f"SELECT (SELECT count(*) FROM datasets WHERE org_id = {ORG}) AS datasets,"
        f" (SELECT count(*) FROM scenes WHERE org_id = {ORG}) AS scenes,"
        f" (SELECT count(*) FROM objects WHERE org_id = {ORG}) AS objects,"
        " (SELECT count(*) FROM objects WHERE corrected_by IS NOT NULL"
        f" AND org_id = {ORG}) AS corrected,"
        f" (SELECT count(*) FROM reviews WHERE org_id = {ORG}) AS reviews,"
        f" (SELECT avg(confidence) FROM objects WHERE org_id = {ORG}) AS avg_conf"
    )
    assert row is not None
    scenes = await conn.fetch(
        f"SELECT status, count(*) AS n FROM scenes WHERE org_id = {ORG} GROUP BY 1"
    )
    jobs = await conn.fetch(
        f"SELECT status, count(*) AS n FROM jobs WHERE org_id = {ORG} GROUP BY 1"
    )
    return Overview(
        datasets=row["datasets"],
        scenes=row["scenes"],
        scenes_by_status={r["status"]: r["n"] for r in scenes},
        objects=row["objects"],
        corrected_objects=row["corrected"],
        jobs_by_status={r["status"]: r["n"] for r in jobs},
        reviews=row["reviews"],
        avg_object_confidence=None if row["avg_conf"] is None else float(row["avg_conf"]),
    )


async def distribution(conn: Conn, kind: str, dataset_id: str | None = None) -> list[Bucket]:
    """Counts per value of ``kind``, largest first (confidence: ten 0.1-wide bins, in order).

    Raises KeyError naming the valid kinds for any other ``kind``.
    """
    if kind not in _QUERIES:
        raise KeyError(f"unknown distribution {kind!r}; one of: {', '.join(KINDS)}")
    sql = _QUERIES[kind].format(org=ORG, ds="AND s.dataset_id = $1" if dataset_id else "")
    if kind == "scene_type":
        sql = sql.replace("s.dataset_id", "dataset_id")
    rows = await conn.fetch(sql, *([dataset_id] if dataset_id else []))
    total = sum(r["n"] for r in rows) or 1
    buckets = [Bucket(key=r["key"], count=r["n"], share=round(r["n"] / total, 6)) for r in rows]
    if kind == "confidence":
        return sorted(buckets, key=lambda b: b.key)
    return sorted(buckets, key=lambda b: (-b.count, b.key))
