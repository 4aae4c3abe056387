"""The Litestar application: REST and SSE over the event log and the read models."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from typing import Any

from botocore.exceptions import HTTPClientError
from litestar import Litestar, Request, Router
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusController

from modomo.api import contract, metrics
from modomo.api.auth import TokenCache, check_declared, role_guard
from modomo.api.bodies import SceneBodies
from modomo.api.datasets import DatasetController
from modomo.api.evaluations import EvaluationController
from modomo.api.exports import ExportController
from modomo.api.hub import JobStreamHub
from modomo.api.jobs import JobController
from modomo.api.links import MediaLinks, PresignCache, media_key
from modomo.api.media import MediaController
from modomo.api.observe import observed
from modomo.api.orgs import OrgController
from modomo.api.ratelimit import write_rate_guard
from modomo.api.review_queue import ReviewQueueController
from modomo.api.reviews import ReviewController
from modomo.api.scenes import ObjectController, SceneController
from modomo.api.services import Services, org_scope, services
from modomo.api.similarity import SimilarityController
from modomo.api.stats import StatsController
from modomo.api.system import (
    MAX_PARAM_CHARS,
    UNREACHABLE,
    HealthController,
    check_text,
    unavailable,
)
from modomo.api.taxonomies import TaxonomiesController
from modomo.api.tickets import EventTicketController
from modomo.api.web import AppController, RootController
from modomo.pg import keep_session
from modomo.pg import pool as db_pool
from modomo.read.jobs import JobReader
from modomo.read.scenes import SceneReader
from modomo.settings import Settings
from modomo.storage import Storage
from modomo.streams import metrics as stream_metrics
from modomo.streams.completion import JobCompletion
from modomo.streams.connection import connect
from modomo.streams.keys import Keys
from modomo.streams.log import EventLog
from modomo.streams.queue import TaskQueue

MAX_BODY_BYTES = 1024 * 1024


def create_app(settings: Settings, freeze_gc: bool = False) -> Litestar:
    """The API for ``settings``; clients are opened by its lifespan. ``freeze_gc`` is for
    a process that serves only this app (``modomo api``), not for tests that start many."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        redis = connect(settings)
        pool = await db_pool(settings, min_size=1, max_size=10, reset=keep_session)
        keys = Keys(settings.redis_prefix)
        async with Storage.open(settings) as storage:
            hub = JobStreamHub(redis, keys)
            app.state.services = Services(
                settings=settings,
                redis=redis,
                db=org_scope(pool, settings, ""),
                pool=pool,
                storage=storage,
                log=EventLog(redis, keys),
                hub=hub,
                keys=keys,
                completion=JobCompletion(
                    redis, keys, settings.attempts_ttl_s, settings.job_retention_s
                ),
                links=MediaLinks(media_key(settings.jwt_secret), settings.presign_ttl_s),
                presigned=PresignCache(storage.presign_get, settings.presign_ttl_s),
                jobs=JobReader(),
                scenes=SceneReader(settings.scene_cache_size),
                bodies=SceneBodies(settings.scene_cache_size),
                tokens=TokenCache(settings.jwt_secret),
            )
            # Start-up objects (modules, routes, schemas: ~200k) live as long as the process;
            # frozen, a full collection no longer scans them. It took 150-400 ms with 1000
            # SSE clients connected, stalling every stream at once.
            if freeze_gc:
                gc.collect()
                gc.freeze()
            gauges = asyncio.create_task(_refresh_gauges(app.state.services))
            try:
                yield
            finally:
                gauges.cancel()
                await hub.close()
                await pool.close()
                await redis.aclose()

    class Metrics(PrometheusController):
        path = "/metrics"
        opt = {"public": True}  # to role_guard; its own guard asks for a network or token
        guards = [metrics.metrics_guard(settings)]
        include_in_schema = False  # Prometheus text for scrapers, not part of the REST API
        openmetrics_format = False

    app = Litestar(
        route_handlers=[
            DatasetController,
            OrgController,
            JobController,
            EventTicketController,
            SceneController,
            ObjectController,
            ReviewController,
            ReviewQueueController,
            StatsController,
            TaxonomiesController,
            ExportController,
            EvaluationController,
            SimilarityController,
            HealthController,
            MediaController,
            Metrics,
            AppController,
            RootController,
        ],
        dependencies={"svc": Provide(services, sync_to_thread=False)},
        guards=[role_guard, write_rate_guard],
        before_request=_before_request,
        # An unreachable server (Redis, PostgreSQL, the bucket) is a 503, never a 500.
        exception_handlers={exc: unavailable for exc in (*UNREACHABLE, HTTPClientError)},
        lifespan=[lifespan],
        cors_config=CORSConfig(
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "Last-Event-ID"],
            max_age=600,
        ),
        middleware=[contract.allow_header, observed],
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=OpenAPIConfig(
            title="Modomo API",
            version="0.1.0",
            description="Datasets of room photos, jobs that label them, reviews. Every "
            "operation lists the security it needs (none: public) and every error it can "
            "answer; errors are JSON `{status_code, detail, extra}`.",
            components=contract.COMPONENTS,
            openapi_router=Router(
                "/schema", route_handlers=[], include_in_schema=False, opt={"public": True}
            ),
        ),
        debug=False,
    )
    check_declared(app)  # fails closed: no route is public by omission
    contract.document(app)
    contract.exact_body_schemas(app)
    contract.set_upload_limit(app, settings.max_upload_bytes)
    contract.text_parameters(app, MAX_PARAM_CHARS)
    return app


async def _before_request(request: Request[Any, Any, Any]) -> None:
    """Text a database can store in path and query (and named surrogates in bodies), then
    bodies with JSON Schema's own types."""
    await check_text(request)
    await contract.strict_bodies(request)


async def _refresh_gauges(svc: Services) -> None:
    queue = TaskQueue(svc.redis, svc.keys)
    while True:
        with contextlib.suppress(Exception):
            stream_metrics.observe_queue(await queue.stats())
            await stream_metrics.observe_workers(svc.redis, svc.keys)
            metrics.SSE_READERS.set(svc.hub.readers)
        await asyncio.sleep(5)


def app_from_env() -> Litestar:
    """The app for the settings in the environment: what each worker process builds."""
    from modomo.logs import configure_logging

    settings = Settings.from_env()
    configure_logging(settings)
    return create_app(settings, freeze_gc=True)


def serve(settings: Settings, workers: int = 1) -> None:
    """Serve the API on ``api_host:api_port`` until SIGTERM/SIGINT, in ``workers``
    processes sharing the listening socket (uvicorn on uvloop and httptools).

    Each process has its own connection pools, SSE reader and caches, and any of them can
    serve any request (links and resumption need no shared memory). Prometheus counters
    are per process, so with several workers ``/metrics`` shows the one that answered.
    """
    import uvicorn

    common: dict[str, Any] = {
        "host": settings.api_host,
        "port": settings.api_port,
        "log_config": None,
        "access_log": False,
        "lifespan": "on",
        "loop": "uvloop",
        "http": "httptools",
        # Open SSE streams would hold a graceful shutdown forever; their clients resume.
        "timeout_graceful_shutdown": 5,
    }
    if workers == 1:
        uvicorn.run(create_app(settings, freeze_gc=True), **common)
    else:
        # Each worker is a fresh interpreter that builds its app from the same environment.
        uvicorn.run("modomo.api.app:app_from_env", factory=True, workers=workers, **common)
