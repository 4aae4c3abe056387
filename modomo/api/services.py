"""What the API's handlers share: clients built once at start-up, and small helpers."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import asyncpg
from litestar import Request, Response
from litestar.datastructures import State
from litestar.exceptions import ClientException, NotFoundException
from litestar.params import Parameter
from redis.asyncio import Redis

from modomo.api.auth import Caller, TokenCache
from modomo.api.bodies import SceneBodies
from modomo.api.hub import JobStreamHub
from modomo.api.links import MediaLinks, PresignCache
from modomo.api.schemas import Accepted
from modomo.api.scope import OrgScope
from modomo.domain.events import EventBase
from modomo.pg import search_path
from modomo.read import progress
from modomo.read.jobs import JobReader
from modomo.read.scenes import SceneReader
from modomo.settings import Settings
from modomo.storage import Storage
from modomo.streams.completion import JobCompletion
from modomo.streams.entries import parse_id
from modomo.streams.keys import Keys
from modomo.streams.log import Appended, EventLog

if TYPE_CHECKING:
    Pool = asyncpg.Pool[Any]
else:  # asyncpg's classes are not generic at run time, and Litestar resolves these hints
    Pool = asyncpg.Pool


@dataclass(slots=True)
class Services:
    settings: Settings
    redis: Redis
    db: OrgScope
    """The caller's organisation's view of the database (every handler reads through
    it); outside a request it names no organisation and sees no rows."""
    pool: Pool
    """The connections themselves, as the tables' owner: for credentials, quotas and
    keys, whose queries name the organisation themselves."""
    storage: Storage
    log: EventLog
    hub: JobStreamHub
    keys: Keys
    completion: JobCompletion
    links: MediaLinks
    presigned: PresignCache
    jobs: JobReader
    scenes: SceneReader
    bodies: SceneBodies
    tokens: TokenCache

    async def append(self, events: list[EventBase]) -> Appended:
        return await self.log.append(events)

    async def applied(self, projector: str, log_id: str, wait_ms: int | None = None) -> bool:
        """Wait until ``projector`` has applied the log up to ``log_id`` (read-your-writes);
        False when that took longer than the bound."""
        target = parse_id(log_id)
        deadline = time.monotonic() + (wait_ms or self.settings.write_wait_ms) / 1000
        while True:
            position = await progress.position(self.db, projector)
            if position is not None and parse_id(position) >= target:
                return True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)

    async def unapplied(self, projector: str, event_id: str, log_id: str) -> Response[Any] | None:
        """None once ``projector`` shows the write; else the 202 to answer with."""
        if await self.applied(projector, log_id):
            return None
        return Response(Accepted(event_id=event_id, log_id=log_id), status_code=202)


def services(state: State, request: Request[Any, Any, Any]) -> Services:
    """Litestar dependency: the services built at start-up, with the database scoped to
    the caller's organisation (the guard, which runs first, put the caller in scope)."""
    found: Services = state.services
    caller: Caller | None = request.scope["state"].get("caller")
    if caller is None:  # a public route: no organisation, no rows
        return found
    return replace(found, db=org_scope(found.pool, found.settings, caller.org))


def org_scope(pool: Pool, settings: Settings, org: str) -> OrgScope:
    """Reads as ``org``: as the API's role when one is set, and with the search path set in
    each transaction too, so they resolve through a pooler that keeps no session setting."""
    return OrgScope(pool, org, settings.db_api_role, search_path(settings))


TIME_ID_CURSOR = r"^[0-9]{1,16}~[A-Za-z0-9_.:-]{1,64}$"
"""A page position in a list ordered by (time, id), newest first: the last item's time in
microseconds since 1970 (UTC), ``~``, its id. Every string that matches is a valid position."""
ID_CURSOR = r"^[A-Za-z0-9_.:-]{1,64}$"
"""A page position in a list ordered by id: the last item's id."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

CursorAfterTimeId = Annotated[
    str | None,
    Parameter(
        pattern=TIME_ID_CURSOR,
        description="`next_cursor` of the previous page: `<created_at, µs since 1970>~<id>`",
    ),
]
CursorAfterId = Annotated[
    str | None,
    Parameter(pattern=ID_CURSOR, description="`next_cursor` of the previous page: the last id"),
]


def time_id_cursor(at: datetime, ident: str) -> str:
    """The cursor after an item created ``at`` with id ``ident``."""
    return f"{(at - _EPOCH) // timedelta(microseconds=1)}~{ident}"


def parse_time_id_cursor(cursor: str) -> tuple[datetime, str]:
    """The (time, id) of a cursor matching :data:`TIME_ID_CURSOR` (the route checked it)."""
    micros, _, ident = cursor.partition("~")
    return _EPOCH + timedelta(microseconds=int(micros)), ident


class Conflict(ClientException):
    """409: the request is well formed but the state of what it names does not allow it
    (a scene not uploaded yet, a dataset with nothing to process)."""

    status_code = 409


def not_found(kind: str, ident: str) -> NotFoundException:
    return NotFoundException(f"no {kind} with id {ident!r}")


def origin(scope: Any) -> str:
    """``scheme://host`` as the client reached this API (for absolute links)."""
    host = "127.0.0.1"
    for name, value in scope["headers"]:
        if name == b"host":
            host = value.decode("latin-1")
            break
    return f"{scope['scheme']}://{host}"
