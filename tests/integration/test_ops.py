"""Operations files: Prometheus config and alerts (checked by promtool), Grafana dashboards
(built from code), and every metric they query being one Modomo exports."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from modomo.settings import Settings
from tests.integration.api_support import running_api

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "ops"
PROMTOOL = shutil.which("promtool")


def test_prometheus_config_and_rules_are_valid(tmp_path: Path) -> None:
    # scripts/bootstrap.sh installs it (Debian package prometheus): a missing one is a failure.
    assert PROMTOOL is not None, "promtool is missing: apt-get install prometheus"
    # The scrape token lives in a file beside the config, deployed, never committed.
    folder = tmp_path / "prometheus"
    shutil.copytree(OPS / "prometheus", folder)
    (folder / "modomo-metrics-token").write_text("a-scrape-token\n")
    text = (folder / "prometheus.yml").read_text()
    assert text.count("credentials_file: modomo-metrics-token") == text.count("job_name:") == 3
    config = subprocess.run(
        [PROMTOOL, "check", "config", str(folder / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert config.returncode == 0, config.stdout + config.stderr
    assert "7 rules found" in config.stdout + config.stderr


def test_the_failure_rate_alert_fires_above_five_percent_only() -> None:
    assert PROMTOOL is not None, "promtool is missing: apt-get install prometheus"
    result = subprocess.run(
        [PROMTOOL, "test", "rules", str(OPS / "prometheus/alerts_test.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def _build_module() -> object:
    spec = importlib.util.spec_from_file_location("grafana_build", OPS / "grafana/build.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_dashboards_match_their_code() -> None:
    build = _build_module()
    for name, board in build.DASHBOARDS.items():  # type: ignore[attr-defined]
        committed = (OPS / "grafana/dashboards" / name).read_text()
        assert committed == build.render(board), f"run python ops/grafana/build.py ({name})"
        assert json.loads(committed)["panels"]


def _queried_metrics() -> set[str]:
    texts = [p.read_text() for p in (OPS / "grafana/dashboards").glob("*.json")]
    texts.append((OPS / "prometheus/alerts.yml").read_text())
    found: set[str] = set()
    for text in texts:
        found.update(re.findall(r"\b((?:modomo|litestar)_[a-z0-9_]+)\b", text))
    return found


async def test_every_queried_metric_is_exported(db_settings: Settings, s3_endpoint: str) -> None:
    # The GPU worker's series live in its own process; importing the module registers them.
    import modomo.gpu.metrics
    import modomo.projections.metrics
    import modomo.streams.metrics  # noqa: F401

    async with running_api(db_settings, s3_endpoint) as api, api.client() as client:
        await client.get("/datasets")
        await client.get("/health")
        exposed = (await client.get("/metrics")).text
    exported = {
        line.split("{")[0].split(" ")[0]
        for line in exposed.splitlines()
        if line and not line.startswith("#")
    }
    # Labelled series show no sample until first used; their families are registered.
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_count", "_sum"),
        "summary": ("_count", "_sum"),
    }
    for family in REGISTRY.collect():
        exported.update(family.name + s for s in suffixes.get(family.type, ("",)))
    queried = _queried_metrics()
    assert len(queried) >= 20
    assert queried - exported == set()
