"""Prometheus series of the API (beside litestar's request metrics), and who may read them."""

from __future__ import annotations

import ipaddress
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from prometheus_client import Counter, Gauge

from modomo.bearer import bearer_matches
from modomo.settings import Settings

SSE_CLIENTS = Gauge("modomo_sse_clients", "Open SSE streams of job events")
SSE_READERS = Gauge("modomo_sse_redis_readers", "Redis readers fanning job streams out")
JOBS_CREATED = Counter("modomo_jobs_created", "Jobs started through the API")
RATE_LIMITED = Counter("modomo_writes_rate_limited", "Writes refused with 429 (rate limit)")


def metrics_guard(settings: Settings) -> Any:
    """A guard letting ``MODOMO_METRICS_NETWORKS`` or ``MODOMO_METRICS_TOKEN`` read
    ``/metrics``: the series name routes, queues and workers, nothing for the public."""
    networks = [ipaddress.ip_network(n, strict=False) for n in settings.metrics_networks]
    token = settings.metrics_token

    async def guard(
        connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        if token and bearer_matches(connection.headers.get("authorization", ""), token):
            return
        # The peer as uvicorn reports it: X-Forwarded-For counts only when a proxy in
        # FORWARDED_ALLOW_IPS (by default 127.0.0.1: one on this machine) sent it.
        host = connection.client.host if connection.client else ""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is not None and any(address in network for network in networks):
            return
        raise NotAuthorizedException(
            "/metrics: send 'Authorization: Bearer <MODOMO_METRICS_TOKEN>' or scrape from "
            "a network in MODOMO_METRICS_NETWORKS",
            headers={"WWW-Authenticate": "Bearer"},
        )

    return guard
