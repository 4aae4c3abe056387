"""The review queue: a dataset's objects in the order a reviewer's time helps most.

Active learning's usual ranking, as three keys in turn:

1. **Confidence**, lowest first, to two decimals (as the app shows it), so the keys after
   it decide between objects a reviewer would call equally uncertain;
2. **Detector disagreement** first: YOLO and GroundingDINO both saw the object and named
   different categories;
3. **Material margin**, smallest first: the material model's top two scores were close
   (objects without model-scored materials come last);

then the object id, so the order is total and paging is stable. An object leaves the queue
once any review (approve, reject or fix) names it. Pages are keyset-paged: the cursor is
the last item's four keys, ``<confidence bin>~<agree 0|1>~<margin key>~<object id>``, and
walks the ``objects_review_queue`` index (migration 0050) in order.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from modomo.read.sql import Conn

CURSOR_PATTERN = r"^[0-9]{1,3}~[01]~[0-9]{1,5}~[A-Za-z0-9_.:-]{1,64}$"
"""What a review-queue cursor looks like; every string that matches is a valid position."""
_CURSOR = re.compile(CURSOR_PATTERN)

# Verbatim the expressions of the objects_review_queue index (migrations/0050), so the
# planner walks the index instead of sorting the dataset's objects.
_CONF = "floor(o.confidence * 100)::int"
_AGREE = "(CASE WHEN o.detect_category <> o.label_category THEN 0 ELSE 1 END)"
_MARGIN = "coalesce(round(o.material_margin * 10000)::int, 10001)"
_UNREVIEWED = "NOT EXISTS (SELECT 1 FROM reviews r WHERE r.object_id = o.object_id)"
_IN_ORG = "o.org_id = current_setting('modomo.org', true)"  # see modomo.read.sql.in_org


class QueueMaterial(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    score: float


class QueueItem(msgspec.Struct, kw_only=True):
    """One object waiting for review, with why it ranks where it does."""

    object_id: str
    scene_id: str
    category: str
    confidence: float
    bbox: list[float]
    label: str
    model: str
    detect_category: str | None
    """What the detector (YOLO) called it."""
    label_category: str | None
    """What the open-vocabulary labeller (GroundingDINO) called it."""
    disagreement: bool
    """Both detectors saw it and named different categories."""
    material_margin: float | None
    """Top material score minus the runner-up's; None without model-scored materials."""
    materials: list[QueueMaterial]
    corrected: bool
    """A reviewer has already corrected it (it stays queued until reviewed)."""
    mask_key: str | None
    thumb_key: str | None
    thumb_url: str | None = None
    """Where to fetch the object's thumbnail (filled in by the API)."""


class QueuePage(msgspec.Struct, kw_only=True):
    items: list[QueueItem]
    next_cursor: str | None
    """Pass as ``cursor`` for the next page; None on the last page."""
    remaining: int
    """Objects of the dataset still waiting for a review (all pages)."""


def parse_cursor(cursor: str) -> tuple[int, int, int, str]:
    """The four keys of a cursor; ValueError when it does not match :data:`CURSOR_PATTERN`."""
    if not _CURSOR.match(cursor):
        raise ValueError(f"invalid review-queue cursor {cursor[:80]!r}")
    conf, agree, margin, object_id = cursor.split("~", 3)
    return int(conf), int(agree), int(margin), object_id


async def review_queue(
    conn: Conn, dataset_id: str, limit: int, cursor: str | None = None
) -> QueuePage:
    """One page of ``dataset_id``'s queue after ``cursor`` (from the start without one).

    ``conn`` is an asyncpg connection or pool in the read-model schema.
    """
    args: list[Any] = [dataset_id, limit + 1]
    after = ""
    if cursor is not None:
        args.extend(parse_cursor(cursor))
        after = f"AND ({_CONF}, {_AGREE}, {_MARGIN}, o.object_id) > ($3, $4, $5, $6)"
    rows = await conn.fetch(
        f"SELECT o.object_id, o.scene_id, o.category_code, o.confidence, o.bbox, o.label, "
        f"o.model, o.detect_category, o.label_category, o.material_margin, o.mask_key, "
        f"o.thumb_key, o.corrected_by, {_CONF} AS k_conf, {_AGREE} AS k_agree, "
        f"{_MARGIN} AS k_margin FROM objects o "
        f"WHERE o.dataset_id = $1 AND {_IN_ORG} AND {_UNREVIEWED} {after} "
        f"ORDER BY {_CONF}, {_AGREE}, {_MARGIN}, o.object_id LIMIT $2",
        *args,
    )
    page = rows[:limit]
    materials: dict[str, list[QueueMaterial]] = {}
    if page:
        for m in await conn.fetch(
            "SELECT object_id, material_code, score FROM object_materials o "
            f"WHERE object_id = ANY($1::text[]) AND {_IN_ORG} "
            "ORDER BY score DESC, material_code",
            [r["object_id"] for r in page],
        ):
            materials.setdefault(m["object_id"], []).append(
                QueueMaterial(code=m["material_code"], score=m["score"])
            )
    remaining = await conn.fetchval(
        f"SELECT count(*) FROM objects o WHERE o.dataset_id = $1 AND {_IN_ORG} AND {_UNREVIEWED}",
        dataset_id,
    )
    items = [
        QueueItem(
            object_id=r["object_id"],
            scene_id=r["scene_id"],
            category=r["category_code"],
            confidence=r["confidence"],
            bbox=list(r["bbox"]),
            label=r["label"],
            model=r["model"],
            detect_category=r["detect_category"],
            label_category=r["label_category"],
            disagreement=r["k_agree"] == 0,
            material_margin=r["material_margin"],
            materials=materials.get(r["object_id"], []),
            corrected=r["corrected_by"] is not None,
            mask_key=r["mask_key"],
            thumb_key=r["thumb_key"],
        )
        for r in page
    ]
    last = page[-1] if len(rows) > limit else None
    return QueuePage(
        items=items,
        next_cursor=None
        if last is None
        else f"{last['k_conf']}~{last['k_agree']}~{last['k_margin']}~{last['object_id']}",
        remaining=remaining,
    )
