"""The audit trail: who changed what, and when, read from the event archive (``event_log``).

Only events that change data are listed (see :data:`AUDITED`), newest first, for one
organisation: an event's ``org`` column, or the default organisation for such an event
written before organisations existed (its ``org`` is NULL). The archive is the log's own
copy, so the trail cannot disagree with what the read models were folded from.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from modomo.domain.orgs import DEFAULT_ORG
from modomo.read.sql import Conn, Params

AUDITED: dict[str, tuple[str, str]] = {
    "dataset_created": ("created_by", "dataset_id"),
    "scenes_registered": ("", "dataset_id"),
    "job_created": ("created_by", "job_id"),
    "object_corrected": ("corrected_by", "object_id"),
    "review_submitted": ("reviewer", "review_id"),
    "export_requested": ("requested_by", "export_id"),
    "evaluation_recorded": ("evaluated_by", "evaluation_id"),
    "org_quota_set": ("set_by", "org"),
    "api_key_created": ("created_by", "key_id"),
    "api_key_revoked": ("revoked_by", "key_id"),
}
"""Event type → (the field naming who did it, the field naming what it changed)."""

_CHANGES = (
    "name",
    "category",
    "materials",
    "bbox",
    "attrs",
    "verdict",
    "note",
    "format",
    "role",
    "scenes_per_day",
    "scene_id",
    "object_id",
)
"""Fields of an audited event shown as what changed (the rest are ids or bulk)."""


class AuditEntry(msgspec.Struct, kw_only=True, gc=False):
    log_id: str
    """The event's position in the log (``<ms>-<seq>``)."""
    event_id: str
    type: str
    at: datetime
    actor: str
    """Who did it (a token's subject, ``apikey:<id>``); empty where the event names no one."""
    target: str
    """The id of what it created or changed (dataset, job, object, review, export, key)."""
    dataset_id: str | None
    job_id: str | None
    changes: dict[str, Any]
    """What it set, for a change (a correction's new category, a review's verdict...)."""


class AuditPage(msgspec.Struct, kw_only=True, gc=False):
    items: list[AuditEntry]
    next_cursor: str | None
    """Pass as ``cursor`` for the next (older) page; None on the last one."""


_payload = msgspec.json.Decoder(dict[str, Any])


def _entry(row: Any) -> AuditEntry:
    try:
        body = _payload.decode(bytes(row["payload"]))
    except msgspec.DecodeError:
        body = {}
    who, what = AUDITED.get(row["type"], ("", ""))
    changes = {k: body[k] for k in _CHANGES if body.get(k) is not None}
    if row["type"] == "scenes_registered":
        changes = {"scenes": len(body.get("scenes") or ())}
    return AuditEntry(
        log_id=f"{row['ms']}-{row['seq']}",
        event_id=row["event_id"],
        type=row["type"],
        at=row["at"],
        actor=str(body.get(who, "")) if who else "",
        target=str(body.get(what, "")),
        dataset_id=row["dataset_id"],
        job_id=row["job_id"],
        changes=changes,
    )


async def audit(
    conn: Conn,
    org: str,
    *,
    dataset_id: str | None,
    before: tuple[int, int] | None,
    limit: int,
) -> AuditPage:
    """Up to ``limit`` audited events of ``org`` (of one dataset when given), newest first,
    older than the log position ``before``."""
    arg = Params(list(AUDITED), org)
    org_match = "coalesce(org, $3) = $2" if org == DEFAULT_ORG else "org = $2"
    if org == DEFAULT_ORG:
        arg(DEFAULT_ORG)
    where = ["type = ANY($1::text[])", org_match]
    if dataset_id is not None:
        where.append(f"dataset_id = {arg(dataset_id)}")
    if before is not None:
        where.append(f"(ms, seq) < ({arg(before[0])}, {arg(before[1])})")
    rows = await conn.fetch(
        "SELECT ms, seq, event_id, type, at, dataset_id, job_id, payload FROM event_log "
        f"WHERE {' AND '.join(where)} ORDER BY ms DESC, seq DESC LIMIT {arg(limit + 1)}",
        *arg.values,
    )
    items = [_entry(r) for r in rows[:limit]]
    return AuditPage(
        items=items, next_cursor=items[-1].log_id if len(rows) > limit and items else None
    )
