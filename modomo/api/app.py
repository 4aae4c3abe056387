"""The Litestar application: REST and SSE over the event log and the read models."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.prometheus import PrometheusConfig, PrometheusController

from modomo.api import metrics
from modomo.api.auth import role_guard
from modomo.api.datasets import DatasetController
from modomo.api.evaluations import EvaluationController
from modomo.api.exports import ExportController
from modomo.api.hub import JobStreamHub
from modomo.api.jobs import JobController
from modomo.api.reviews import ReviewController
from modomo.api.scenes import ObjectController, SceneController
from modomo.api.services import Services, services
from modomo.api.similarity import SimilarityController
from modomo.api.stats import StatsController
from modomo.api.system import UNREACHABLE, HealthController, access_log, check_text, unavailable
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
        openmetrics_format = False

    return Litestar(
        route_handlers=[
            DatasetController,
            JobController,
            SceneController,
            ObjectController,
            ReviewController,
            StatsController,
            ExportController,
            EvaluationController,
            SimilarityController,
            HealthController,
            Metrics,
        ],
        dependencies={"svc": Provide(services, sync_to_thread=False)},
        guards=[role_guard],
        before_request=check_text,
        exception_handlers={exc: unavailable for exc in UNREACHABLE},
        lifespan=[lifespan],
        cors_config=CORSConfig(
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST", "PATCH", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "X-API-Key", "Last-Event-ID"],
        ),
        middleware=[access_log, PrometheusConfig(app_name="modomo", group_path=True).middleware],
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=OpenAPIConfig(
            title="Modomo API",
            version="0.1.0",
            description="Datasets of room photos, jobs that label them, reviews.",
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(type="http", scheme="bearer", bearer_format="JWT"),
                    "apiKey": SecurityScheme(
                        type="apiKey", name="X-API-Key", security_scheme_in="header"
                    ),
                }
            ),
            security=[{"bearer": []}, {"apiKey": []}],
        ),
        debug=False,
    )


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
    )
    await uvicorn.Server(config).serve()
