"""Exports: request one (built in the background by ``modomo exporter``), follow it, fetch it.

``POST /datasets/:id/exports`` appends ``export_requested`` to the log and queues it in one
MULTI, then answers 202 with the export's state; ``GET /exports/:id`` shows its progress
while it runs and a presigned download URL once the zip is in the bucket.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.exceptions import ValidationException
from litestar.params import Parameter
from msgspec import Meta

from modomo.api.auth import caller_of
from modomo.api.datasets import dataset_row
from modomo.api.services import (
    CursorAfterTimeId,
    Services,
    not_found,
    parse_time_id_cursor,
    time_id_cursor,
)
from modomo.domain.events import ExportFormat, ExportRequested, new_id
from modomo.read.products import ExportOut, export, exports
from modomo.streams.exports import ExportQueue

_ENTRY_ID = re.compile(r"\d{1,20}-\d{1,20}")

# What ``as_of`` takes, as one pattern the schema publishes and msgspec enforces, so a value
# the document allows is one the API accepts: empty, a log entry id, an event id, or an ISO
# date or time on a real calendar day (leap years included) that ``fromisoformat`` reads.
_LEAP = r"[1-9][0-9](?:0[48]|[2468][048]|[13579][26])|(?:[13579][26]|[2468][048])00"
_DAY = (
    r"[1-9][0-9]{3}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    r"|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)|02-(?:0[1-9]|1[0-9]|2[0-8]))"
    rf"|(?:{_LEAP})-02-29"
)
_TIME = r"T(?:[01][0-9]|2[0-3]):[0-5][0-9](?::[0-5][0-9](?:\.[0-9]{1,6})?)?"
_ZONE = r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
AS_OF_PATTERN = (
    r"^(?:|[0-9]{1,20}-[0-9]{1,20}"
    r"|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    rf"|(?:{_DAY})(?:{_TIME}{_ZONE}?)?)$"
)


class ExportIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    format: ExportFormat
    as_of: Annotated[str, Meta(max_length=64, pattern=AS_OF_PATTERN)] = ""
    """A log entry id (``ms-seq``), an event id or an ISO time; empty: the end of the log
    when the worker starts (the export's ``position`` then says which entry that was)."""
    reviewed_only: bool = False


class Progress(msgspec.Struct, kw_only=True):
    done: int
    total: int


class ExportView(ExportOut, kw_only=True):
    progress: Progress | None = None
    download_url: str | None = None
    """Presigned GET of the zip (valid ``MODOMO_PRESIGN_TTL_S``), once ``status`` is done."""


class ExportPage(msgspec.Struct, kw_only=True):
    items: list[ExportView]
    next_cursor: str | None


def check_as_of(value: str) -> str:
    """``value`` when it names a position an export can take; a 400 naming the field else."""
    value = value.strip()
    if not value or _ENTRY_ID.fullmatch(value):
        return value
    try:
        uuid.UUID(value)
        return value
    except ValueError:
        pass
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise ValidationException(
            "as_of: takes a log entry id (ms-seq), an event id (UUID) or an ISO time, "
            f"got {value!r}"
        ) from None
    return value


async def _view(svc: Services, row: ExportOut) -> ExportView:
    view = ExportView(**msgspec.structs.asdict(row))
    if row.status in ("queued", "running", "retrying"):
        raw: Any = await svc.redis.hgetall(svc.keys.export_progress(row.export_id))
        if raw:
            view.progress = Progress(done=int(raw[b"done"]), total=int(raw[b"total"]))
    if row.status == "done" and row.key:
        view.download_url = await svc.storage.presign_get(row.key)
    return view


class ExportController(Controller):
    path = "/"
    tags = ["exports"]

    @post(
        "/datasets/{dataset_id:str}/exports",
        opt={"role": "reviewer"},
        status_code=202,
        summary="Export a dataset (COCO, YOLO, Parquet) as of a log position, in the background",
    )
    async def request_export(
        self, dataset_id: str, data: ExportIn, request: Request[Any, Any, Any], svc: Services
    ) -> ExportView:
        await dataset_row(svc, dataset_id)
        event = ExportRequested(
            export_id=new_id(),
            dataset_id=dataset_id,
            format=data.format,
            as_of=check_as_of(data.as_of),
            reviewed_only=data.reviewed_only,
            requested_by=caller_of(request).subject,
            org=caller_of(request).org,
        )
        appended = await ExportQueue(svc.redis, svc.keys).request(event)
        if await svc.applied("exports", appended.log_ids[0]):
            found = await export(svc.db, event.export_id)
            if found is not None:
                return await _view(svc, found)
        # Not projected within the bound yet: the request as recorded.
        return ExportView(
            export_id=event.export_id,
            dataset_id=dataset_id,
            format=event.format,
            as_of=event.as_of,
            reviewed_only=event.reviewed_only,
            requested_by=event.requested_by,
            status="queued",
            requested_at=event.at,
        )

    @get("/exports/{export_id:str}", opt={"role": "viewer"}, summary="One export: progress, link")
    async def get_export(self, export_id: str, svc: Services) -> ExportView:
        found = await export(svc.db, export_id)
        if found is None:
            raise not_found("export", export_id)
        return await _view(svc, found)

    @get("/exports", opt={"role": "viewer"}, summary="Exports, newest first")
    async def list_exports(
        self,
        svc: Services,
        dataset_id: str | None = None,
        cursor: CursorAfterTimeId = None,
        limit: Annotated[int, Parameter(ge=1, le=200)] = 50,
    ) -> ExportPage:
        before = None
        if cursor:
            before = parse_time_id_cursor(cursor)
        rows = await exports(svc.db, dataset_id=dataset_id, before=before, limit=limit)
        items = [await _view(svc, r) for r in rows[:limit]]
        last = rows[limit - 1] if len(rows) > limit else None
        return ExportPage(
            items=items,
            next_cursor=time_id_cursor(last.requested_at, last.export_id)
            if last is not None and last.requested_at is not None
            else None,
        )
