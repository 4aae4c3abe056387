"""Per-caller limits on writes: a fixed window counted in Redis, shared by API processes.

Each API key or token subject may make ``MODOMO_WRITE_RATE_LIMIT`` writes (POST, PUT,
PATCH, DELETE) per ``MODOMO_WRITE_RATE_WINDOW_S``; past it the API answers 429 with
``Retry-After`` (the seconds until the window turns). The count is one ``INCR`` in a
``MULTI`` with its ``EXPIRE``, so N API processes share one exact count per caller.

Why not Litestar's ``RateLimitMiddleware``: it runs before the guards, so it can key only
by what the request claims (an address, an unverified header), not by the caller the
credentials prove; and its store is read, modified and written back, so concurrent
processes lose each other's counts. A guard after authentication, on Redis, has neither
problem in twenty lines.
"""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import TooManyRequestsException
from litestar.handlers.base import BaseRouteHandler

from modomo.api import metrics
from modomo.api.auth import Caller
from modomo.api.services import Services

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def write_rate_guard(
    connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
) -> None:
    """After :func:`modomo.api.auth.role_guard`: count the caller's write, 429 past the limit."""
    if connection.scope.get("method") not in WRITE_METHODS:
        return
    caller: Caller | None = connection.scope["state"].get("caller")
    svc: Services = connection.app.state.services
    limit, window_s = svc.settings.write_rate_limit, svc.settings.write_rate_window_s
    if caller is None or limit == 0:  # a public route (no caller to count) or no limit
        return
    now = time.time()
    window = math.floor(now / window_s)
    # A digest keeps a long or odd subject out of the key name, and every key one length;
    # the org is part of it, since two organisations may each have an "alice".
    who = f"{caller.org}\n{caller.subject}"
    digest = hashlib.sha256(who.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    key = svc.keys.write_rate(digest, window)
    async with svc.redis.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, window_s + 1)
        count, _ = await pipe.execute()
    if int(count) > limit:
        metrics.RATE_LIMITED.inc()
        retry_after = max(1, math.ceil((window + 1) * window_s - now))
        raise TooManyRequestsException(
            f"{caller.subject} made more than {limit} writes in {window_s} s "
            f"(MODOMO_WRITE_RATE_LIMIT); retry after {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
