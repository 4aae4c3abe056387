"""Tickets for a browser's EventSource, which cannot send an Authorization header."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, post
from msgspec import Meta

from modomo.api.auth import caller_of, issue_ticket
from modomo.api.jobs import ENTRY_ID_PATTERN
from modomo.api.schemas import In
from modomo.api.services import Services, not_found
from modomo.read.jobs import job_exists


class TicketIn(In, kw_only=True):
    after: Annotated[str, Meta(pattern=ENTRY_ID_PATTERN)] = ""
    """Resume the stream right after this entry id (a client reopening it keeps its place)."""


class Ticket(msgspec.Struct, kw_only=True):
    ticket: str
    """Pass as ``?ticket=`` to GET /jobs/{job_id}/events."""
    expires_at: datetime
    """Open the stream before this; an open stream outlives it."""
    events_url: str
    """The stream's path with the ticket, ready for ``new EventSource(...)``."""


class EventTicketController(Controller):
    path = "/jobs"
    tags = ["jobs"]

    @post(
        "/{job_id:str}/events/ticket",
        opt={"role": "viewer"},
        status_code=201,
        summary="A short-lived ticket to open this job's event stream without headers",
        description="Signed, valid for MODOMO_SSE_TICKET_TTL_S (60 s by default), good only "
        "for GET /jobs/{job_id}/events of this job and only as `?ticket=`; it carries the "
        "caller's identity and role. The access log never records query strings. A client "
        "that reconnects asks for a new one, with `after` set to the last entry id it has.",
    )
    async def ticket(
        self,
        job_id: str,
        request: Request[Any, Any, Any],
        svc: Services,
        data: TicketIn,
    ) -> Ticket:
        if not await job_exists(svc.db, job_id):  # another organisation's is as absent
            raise not_found("job", job_id)
        token, expires = issue_ticket(
            svc.settings.jwt_secret,
            caller_of(request),
            job_id,
            svc.settings.sse_ticket_ttl_s,
            after=data.after,
        )
        return Ticket(
            ticket=token,
            expires_at=datetime.fromtimestamp(expires, UTC),
            events_url=f"/jobs/{job_id}/events?ticket={token}",
        )
