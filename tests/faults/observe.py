"""Watching real processes from a fault test: start ``modomo`` commands, scrape their
``/metrics``, read their ``/health``."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from modomo.settings import Settings
from tests.integration.support import ROOT, settings_env

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def spawn(
    settings: Settings, *args: str, log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """``modomo <args>`` with exactly ``settings``, its output appended to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "modomo.cli", *args],
            cwd=ROOT,
            env=settings_env(settings) | (env or {}),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def scrape(url: str) -> Samples:
    """Every sample of a Prometheus endpoint, by name and labels (an HTTP GET)."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url)
    response.raise_for_status()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """One sample's value, or None when the process does not export it (yet)."""
    return samples.get((name, frozenset(labels.items())))


async def health(url: str) -> tuple[int, dict[str, object]]:
    """Status and JSON body of a ``/health``; (0, {}) when nothing answers."""
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            response = await client.get(url)
    except httpx.HTTPError:
        return 0, {}
    return response.status_code, response.json()
