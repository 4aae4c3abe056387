"""The Litestar application: REST and SSE over the event log and the read models."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from botocore.exceptions import HTTPClientError
from litestar import Litestar, Request, Router
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController

from modomo.api import contract, metrics
from modomo.api.auth import check_declared, role_guard
from modomo.api.datasets import DatasetController
from modomo.api.evaluations import EvaluationController
from modomo.api.exports import ExportController
from modomo.api.hub import JobStreamHub
from modomo.api.jobs import JobController
from modomo.api.review_queue import ReviewQueueController
from modomo.api.reviews import ReviewController
from modomo.api.scenes import ObjectController, SceneController
from modomo.api.services import Services, services
from modomo.api.similarity import SimilarityController
from modomo.api.stats import StatsController
from modomo.api.system import UNREACHABLE, HealthController, access_log, check_text, unavailable
from modomo.api.taxonomies import TaxonomiesController
from modomo.api.tickets import EventTicketController
from modomo.api.web import AppController, RootController
from modomo.projections import db
from modomo.settings import Settings
from modomo.storage import Storage
from modomo.streams import metrics as stream_metrics
from modomo.streams.completion import JobCompletion
from modomo.streams.connection import connect
from modomo.streams.keys import Keys
from modomo.streams.log import EventLog
from modomo.streams.queue import TaskQueue

MAX_BODY_BYTES = 1024 * 1024


def create_app(settings: Settings) -> Litestar:
    """The API for ``settings``; clients are opened by its lifespan."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        redis = connect(settings)
        pool = await db.pool(settings, min_size=1, max_size=10)
        keys = Keys(settings.redis_prefix)
        async with Storage.open(settings) as storage:
            app.state.services = Services(
                settings=settings,
                redis=redis,
                db=pool,
                storage=storage,
                log=EventLog(redis, keys),
                hub=JobStreamHub(redis, keys),
                keys=keys,
                completion=JobCompletion(
                    redis, keys, settings.attempts_ttl_s, settings.job_retention_s
                ),
            )
            gauges = asyncio.create_task(_refresh_gauges(app.state.services))
            try:
                yield
            finally:
                gauges.cancel()
                await pool.close()
                await redis.aclose()

    class Metrics(PrometheusController):
        path = "/metrics"
        opt = {"public": True}
        include_in_schema = False  # Prometheus text for scrapers, not part of the REST API
        openmetrics_format = False

    app = Litestar(
        route_handlers=[
            DatasetController,
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
            Metrics,
            AppController,
            RootController,
        ],
        dependencies={"svc": Provide(services, sync_to_thread=False)},
        guards=[role_guard],
        before_request=_before_request,
        # An unreachable server (Redis, PostgreSQL, the bucket) is a 503, never a 500.
        exception_handlers={exc: unavailable for exc in (*UNREACHABLE, HTTPClientError)},
        lifespan=[lifespan],
        cors_config=CORSConfig(
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PATCH", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "Last-Event-ID"],
            max_age=600,
        ),
        middleware=[
            contract.allow_header,
            access_log,
            PrometheusConfig(app_name="modomo", group_path=True).middleware,
        ],
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


async def serve(settings: Settings) -> None:
    """Serve the API with uvicorn on ``api_host:api_port`` until SIGTERM/SIGINT."""
    import uvicorn

    config = uvicorn.Config(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,
        access_log=False,
        lifespan="on",
        # Open SSE streams would hold a graceful shutdown forever; their clients resume.
        timeout_graceful_shutdown=5,
    )
    await uvicorn.Server(config).serve()
