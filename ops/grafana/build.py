"""Writes the Grafana dashboards in ``dashboards/`` (dashboards as code).

    python ops/grafana/build.py

The JSON files are committed; a test checks they match this file and that every metric
they query is one Modomo exports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATASOURCE = {"type": "prometheus", "uid": "modomo-prometheus"}


def panel(
    title: str,
    exprs: dict[str, str],
    unit: str = "short",
    x: int = 0,
    y: int = 0,
    w: int = 12,
    h: int = 8,
) -> dict[str, Any]:
    return {
        "type": "timeseries",
        "title": title,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"refId": chr(65 + i), "expr": expr, "legendFormat": legend, "datasource": DATASOURCE}
            for i, (legend, expr) in enumerate(exprs.items())
        ],
    }


def dashboard(uid: str, title: str, panels: list[dict[str, Any]]) -> dict[str, Any]:
    for i, p in enumerate(panels):
        p["id"] = i + 1
        p["gridPos"]["x"] = (i % 2) * 12
        p["gridPos"]["y"] = (i // 2) * 8
    return {
        "uid": uid,
        "title": title,
        "tags": ["modomo"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "panels": panels,
    }


def quantiles(metric: str, by: str) -> dict[str, str]:
    return {
        f"p{q} {{{{{by}}}}}": f"histogram_quantile(0.{q}, sum by (le, {by}) "
        f"(rate({metric}_bucket[5m])))"
        for q in (50, 95)
    }


PIPELINE = dashboard(
    "modomo-pipeline",
    "Modomo — jobs and pipeline",
    [
        panel(
            "Scenes ended per minute",
            {
                "succeeded": "sum(rate(modomo_tasks_succeeded_total[5m])) * 60",
                "dead-lettered": "sum(rate(modomo_tasks_dead_lettered_total[5m])) * 60",
                "attempts failed": "sum by (will_retry) (rate(modomo_tasks_failed_total[5m])) * 60",
            },
        ),
        panel(
            "Scene failure rate (alert above 5 %)",
            {
                "failed share": "sum(increase(modomo_tasks_dead_lettered_total[10m])) / clamp_min("
                "sum(increase(modomo_tasks_succeeded_total[10m])) + "
                "sum(increase(modomo_tasks_dead_lettered_total[10m])), 1)",
            },
            unit="percentunit",
        ),
        panel(
            "Queue",
            {
                "length": "max(modomo_queue_length)",
                "pending": "max(modomo_queue_pending)",
                "in flight": "sum(modomo_tasks_in_flight)",
                "dead": "max(modomo_dead_tasks)",
                "never delivered": "max(modomo_queue_undelivered)",
            },
        ),
        panel("Live GPU workers", {"workers": "max(modomo_queue_consumers_live)"}),
        panel("Jobs started per hour", {"jobs": "sum(rate(modomo_jobs_created_total[1h])) * 3600"}),
        panel("Stage latency", quantiles("modomo_stage_duration_seconds", "stage"), unit="s"),
        panel(
            "Scene task latency",
            {
                "p50": "histogram_quantile(0.5, sum by (le) "
                "(rate(modomo_task_duration_seconds_bucket[5m])))",
                "p95": "histogram_quantile(0.95, sum by (le) "
                "(rate(modomo_task_duration_seconds_bucket[5m])))",
            },
            unit="s",
        ),
        panel(
            "Scenes by outcome",
            {"{{status}}": "sum by (status) (rate(modomo_scenes_processed_total[5m])) * 60"},
        ),
        panel("GPU memory in use", {"{{instance}}": "modomo_gpu_memory_bytes"}, unit="bytes"),
        panel("Oldest dead task", {"age": "max(modomo_dead_oldest_age_seconds)"}, unit="s"),
        panel("Dead tasks by reason", {"{{reason}}": "max by (reason) (modomo_dead_reason)"}),
    ],
)

API = dashboard(
    "modomo-api",
    "Modomo — API and projections",
    [
        panel(
            "Requests per second by route",
            {
                "{{path}} {{status_code}}": "sum by (path, status_code) "
                "(rate(litestar_requests_total[5m]))"
            },
        ),
        panel("Request latency", quantiles("litestar_request_duration_seconds", "path"), unit="s"),
        panel(
            "SSE",
            {
                "clients": "sum(modomo_sse_clients)",
                "redis readers": "sum(modomo_sse_redis_readers)",
            },
        ),
        panel(
            "Projector lag (events)",
            {"{{projector}}": "max by (projector) (modomo_projector_lag_events)"},
        ),
        panel(
            "Projected events per second",
            {"{{projector}}": "sum by (projector) (rate(modomo_projector_events_total[5m]))"},
        ),
        panel(
            "Projector batch latency",
            quantiles("modomo_projector_batch_seconds", "projector"),
            unit="s",
        ),
        panel(
            "Parked events per hour",
            {
                "{{projector}}": "sum by (projector) "
                "(rate(modomo_projector_parked_total[1h])) * 3600"
            },
        ),
        panel(
            "Parked events waiting for an operator",
            {"{{projector}}": "max by (projector) (modomo_projector_parked_open)"},
        ),
        panel(
            "Active projector instances",
            {"{{projector}}": "sum by (projector) (modomo_projector_active)"},
        ),
    ],
)

DASHBOARDS = {"pipeline.json": PIPELINE, "api.json": API}


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    for name, board in DASHBOARDS.items():
        (HERE / "dashboards" / name).write_text(render(board))
