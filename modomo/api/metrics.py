"""Prometheus series of the API (beside litestar's request metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SSE_CLIENTS = Gauge("modomo_sse_clients", "Open SSE streams of job events")
SSE_READERS = Gauge("modomo_sse_redis_readers", "Redis readers fanning job streams out")
JOBS_CREATED = Counter("modomo_jobs_created", "Jobs started through the API")
