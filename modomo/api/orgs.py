"""The caller's organisation: who am I (``GET /me``), its quota, its API keys, its audit
trail. Everything here is the caller's own organisation's (``/orgs/me``): no route takes an
organisation id, so no role in one organisation can name another.

Quotas protect the GPU budget: an organisation's admin sets how many scenes its jobs may
process per UTC day, and a job that would go over answers 429 with ``Retry-After`` (the
seconds until the day's count starts again). The count is a Redis counter per organisation
and day, checked and raised in one Lua script, so two jobs racing for the last scenes of
the day cannot both get them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from litestar import Controller, Request, get, post, put
from litestar.exceptions import NotFoundException, TooManyRequestsException
from litestar.params import Parameter
from msgspec import Meta

from modomo.api.auth import Role, caller_of, create_api_key
from modomo.api.schemas import In, Name
from modomo.api.services import Services
from modomo.domain.events import ApiKeyCreated, ApiKeyRevoked, OrgQuotaSet
from modomo.read.audit import AuditPage, audit

LOG_ID_PATTERN = r"^[0-9]{1,18}-[0-9]{1,18}$"
KEY_ID_PATTERN = r"^[0-9a-f]{1,32}$"

_RESERVE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local limit, n = tonumber(ARGV[1]), tonumber(ARGV[2])
if limit > 0 and used + n > limit then return -1 - used end
redis.call('INCRBY', KEYS[1], n)
redis.call('EXPIRE', KEYS[1], 172800)
return used + n
"""


class MeOut(msgspec.Struct, kw_only=True):
    subject: str
    role: str
    org: str
    """The organisation every read and write of this caller is confined to."""
    via: str


class QuotaIn(In, kw_only=True):
    scenes_per_day: Annotated[int, Meta(ge=0, le=100_000_000)]
    """Scenes the organisation's jobs may process per UTC day; 0: no limit."""


class QuotaOut(msgspec.Struct, kw_only=True):
    org: str
    scenes_per_day: int
    """0: no limit."""
    used_today: int
    resets_at: datetime
    """When the day's count starts again (midnight UTC)."""


class KeyIn(In, kw_only=True):
    role: Literal["viewer", "reviewer", "admin"]
    name: Name


class KeyOut(msgspec.Struct, kw_only=True):
    key_id: str
    role: str
    name: str
    org: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None = None
    key: str | None = None
    """The whole key, only in the reply that created it."""


def _day(now: datetime) -> tuple[str, datetime]:
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start.strftime("%Y%m%d"), start + timedelta(days=1)


def _counter(svc: Services, org: str, day: str) -> str:
    return f"{svc.keys.prefix}:quota:{org}:{day}"


async def scenes_per_day(svc: Services, org: str) -> int:
    found = await svc.pool.fetchval("SELECT scenes_per_day FROM org_quotas WHERE org = $1", org)
    return int(found or 0)


async def reserve_scenes(svc: Services, org: str, scenes: int) -> str:
    """Count ``scenes`` against today's quota of ``org``; returns the counter's key (to
    give them back with :func:`release_scenes` if the job is not made). Raises 429 with
    ``Retry-After`` when they would go over."""
    limit = await scenes_per_day(svc, org)
    day, resets = _day(datetime.now(UTC))
    key = _counter(svc, org, day)
    result = int(await svc.redis.eval(_RESERVE, 1, key, limit, scenes))
    if result < 0:
        used = -1 - result
        wait = max(1, int((resets - datetime.now(UTC)).total_seconds()) + 1)
        raise TooManyRequestsException(
            detail=f"this job's {scenes} scenes would take organisation {org!r} over its "
            f"quota of {limit} scenes per day ({used} used today); the count starts again "
            f"at {resets:%Y-%m-%d %H:%M} UTC",
            headers={"Retry-After": str(wait)},
        )
    return key


async def release_scenes(svc: Services, key: str, scenes: int) -> None:
    await svc.redis.decrby(key, scenes)


async def _quota_out(svc: Services, org: str) -> QuotaOut:
    day, resets = _day(datetime.now(UTC))
    used = await svc.redis.get(_counter(svc, org, day))
    return QuotaOut(
        org=org,
        scenes_per_day=await scenes_per_day(svc, org),
        used_today=int(used or 0),
        resets_at=resets,
    )


_KEY_COLUMNS = "key_id, role, name, org, created_by, created_at, revoked_at"


class OrgController(Controller):
    path = "/"
    tags = ["organisations"]

    @get("/me", opt={"role": "viewer"}, summary="Who the caller is, with which role, in which org")
    async def me(self, request: Request[Any, Any, Any]) -> MeOut:
        caller = caller_of(request)
        return MeOut(subject=caller.subject, role=caller.role, org=caller.org, via=caller.via)

    @get("/orgs/me/quota", opt={"role": "viewer"}, summary="The caller's organisation's quota")
    async def quota(self, request: Request[Any, Any, Any], svc: Services) -> QuotaOut:
        return await _quota_out(svc, caller_of(request).org)

    @put(
        "/orgs/me/quota",
        opt={"role": "admin"},
        summary="Set the caller's organisation's scenes-per-day quota (admin)",
        description="Jobs that would take the organisation over it answer 429 with "
        "Retry-After. 0 lifts the limit. Recorded on the log (`org_quota_set`).",
    )
    async def set_quota(
        self, request: Request[Any, Any, Any], data: QuotaIn, svc: Services
    ) -> QuotaOut:
        caller = caller_of(request)
        await svc.pool.execute(
            "INSERT INTO org_quotas (org, scenes_per_day, updated_by) VALUES ($1, $2, $3) "
            "ON CONFLICT (org) DO UPDATE SET scenes_per_day = EXCLUDED.scenes_per_day, "
            "updated_by = EXCLUDED.updated_by, updated_at = now()",
            caller.org,
            data.scenes_per_day,
            caller.subject,
        )
        await svc.append(
            [OrgQuotaSet(org=caller.org, scenes_per_day=data.scenes_per_day, set_by=caller.subject)]
        )
        return await _quota_out(svc, caller.org)

    @get("/orgs/me/keys", opt={"role": "admin"}, summary="The organisation's API keys (admin)")
    async def keys(self, request: Request[Any, Any, Any], svc: Services) -> list[KeyOut]:
        rows = await svc.pool.fetch(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE org = $1 ORDER BY created_at DESC, key_id",
            caller_of(request).org,
        )
        return [KeyOut(**dict(r)) for r in rows]

    @post(
        "/orgs/me/keys",
        opt={"role": "admin"},
        status_code=201,
        summary="Make an API key of the caller's organisation (admin); shown once",
    )
    async def create_key(
        self, request: Request[Any, Any, Any], data: KeyIn, svc: Services
    ) -> KeyOut:
        caller = caller_of(request)
        role: Role = data.role
        full = await create_api_key(svc.pool, role, data.name, caller.org, caller.subject)
        key_id = full.split("_")[1]
        await svc.append(
            [
                ApiKeyCreated(
                    org=caller.org,
                    key_id=key_id,
                    role=role,
                    name=data.name,
                    created_by=caller.subject,
                )
            ]
        )
        row = await svc.pool.fetchrow(
            f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = $1", key_id
        )
        assert row is not None  # made just now
        return KeyOut(**dict(row), key=full)

    @post(
        "/orgs/me/keys/{key_id:str}/revoke",
        opt={"role": "admin"},
        status_code=200,
        raises=[NotFoundException],
        summary="Revoke one of the organisation's API keys (admin)",
    )
    async def revoke_key(
        self,
        request: Request[Any, Any, Any],
        key_id: Annotated[str, Parameter(pattern=KEY_ID_PATTERN)],
        svc: Services,
    ) -> KeyOut:
        caller = caller_of(request)
        row = await svc.pool.fetchrow(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) "
            f"WHERE key_id = $1 AND org = $2 RETURNING {_KEY_COLUMNS}",
            key_id,
            caller.org,
        )
        if row is None:  # another organisation's key is as absent as one never made
            raise NotFoundException(f"no API key with id {key_id!r}")
        await svc.append([ApiKeyRevoked(org=caller.org, key_id=key_id, revoked_by=caller.subject)])
        return KeyOut(**dict(row))

    @get(
        "/audit",
        opt={"role": "reviewer"},
        summary="Who changed what and when, newest first (the caller's organisation)",
        description="Read from the event archive: dataset creations, registrations, jobs, "
        "corrections, reviews, exports, evaluations, quota and API key changes.",
    )
    async def audit_trail(
        self,
        request: Request[Any, Any, Any],
        svc: Services,
        dataset_id: str | None = None,
        cursor: Annotated[
            str | None, Parameter(pattern=LOG_ID_PATTERN, description="`next_cursor`")
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
    ) -> AuditPage:
        before = None
        if cursor:
            ms, _, seq = cursor.partition("-")
            before = (int(ms), int(seq))
        return await audit(
            svc.db, caller_of(request).org, dataset_id=dataset_id, before=before, limit=limit
        )
