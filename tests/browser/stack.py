"""The whole product as real processes for the browser tests (and the app benchmark and
screenshots): the API (which serves the built app), the projectors and a tiny-profile GPU
worker, on the machine's Redis and PostgreSQL, in a key prefix and schemas of their own,
with a SeaweedFS bucket whose CORS rules let the browser upload and read images.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis

from modomo.api.auth import Role, issue_token
from modomo.demo.run import app_link
from modomo.demo.services import free_port, settings_env
from modomo.projections.migrate import migrate
from modomo.settings import Settings
from modomo.storage import Storage
from tests.integration.s3 import ACCESS_KEY, SECRET_KEY
from tests.uploads import form_parts

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("MODOMO_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
DATABASE_URL = os.environ.get(
    "MODOMO_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def chromium() -> str:
    """Debian's Chromium (or the one MODOMO_CHROMIUM names); never a downloaded browser."""
    for candidate in (
        os.environ.get("MODOMO_CHROMIUM", ""),
        "/usr/bin/chromium",
        shutil.which("chromium") or "",
        shutil.which("google-chrome") or "",
    ):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError(
        "no Chromium: `apt-get install chromium` (scripts/bootstrap.sh does it as root) or "
        "set MODOMO_CHROMIUM to a Chrome/Chromium binary"
    )


def real_photos() -> list[Path]:
    """Three real photos that ship inside installed packages (no download)."""
    import sklearn
    import ultralytics

    assets = Path(ultralytics.__file__).parent / "assets"
    images = Path(sklearn.__file__).parent / "datasets" / "images"
    return [assets / "bus.jpg", assets / "zidane.jpg", images / "china.jpg"]


def wait_http(
    url: str, proc: subprocess.Popen[bytes], name: str, log: Path, within_s: float = 120
) -> None:
    """Wait until ``url`` answers 200, failing early (with the log's tail) if ``proc`` died."""
    deadline = time.monotonic() + within_s
    while True:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not answer {url} in {within_s:.0f} s; see {log}")
        time.sleep(0.2)


@dataclass
class Stack:
    settings: Settings
    state: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.api_port}"

    @property
    def api_log(self) -> Path:
        return self.state / "logs" / "api.log"

    def token(self, role: Role = "reviewer", subject: str = "browser") -> str:
        return issue_token(self.settings.jwt_secret, subject, role, 3600)

    def app_link(self, page: str = "/", role: Role = "reviewer") -> str:
        return app_link(self.url, self.token(role), page)

    def client(self, role: Role = "admin") -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.token(role)}"}, timeout=30
        )

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.settings.redis_url)

    def start(self, name: str, args: list[str]) -> None:
        logs = self.state / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with (logs / f"{name}.log").open("ab") as log:
            self.procs[name] = subprocess.Popen(
                [sys.executable, "-m", "modomo.cli", *args],
                env=settings_env(self.settings)
                | {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "1"},
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def wait_api(self) -> None:
        wait_http(f"{self.url}/health", self.procs["api"], "the API", self.api_log, within_s=60)

    def wait_worker(self) -> None:
        wait_http(
            f"http://127.0.0.1:{self.settings.worker_http_port}/health",
            self.procs["worker"],
            "the GPU worker",
            self.state / "logs" / "worker.log",
            within_s=600,
        )

    def kill_api(self) -> None:
        """SIGKILL the API (a crash, no goodbye to its clients)."""
        proc = self.procs.pop("api")
        proc.kill()
        proc.wait(10)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def stack_settings(s3_endpoint: str, tmp: Path, **overrides: Any) -> Settings:
    prefix = f"b{uuid.uuid4().hex[:10]}"
    values: dict[str, Any] = {
        "redis_url": REDIS_URL,
        "redis_prefix": prefix,
        "database_url": DATABASE_URL,
        "db_schema": f"{prefix}_rm",
        "db_log_schema": f"{prefix}_log",
        "s3_endpoint_url": s3_endpoint,
        "s3_access_key_id": ACCESS_KEY,
        "s3_secret_access_key": SECRET_KEY,
        "s3_bucket": f"b-{prefix}",
        "api_port": free_port(),
        "worker_http_port": free_port(),
        "model_profile": "tiny",
        "model_dir": str(tmp / "models"),
        "metrics_port": 0,
        "log_format": "json",
        "jwt_secret": "b" * 40,
        "write_wait_ms": 10_000,
        "retry_backoff_ms": (15_000, 60_000),
        "heartbeat_ms": 1000,
        "lock_ttl_ms": 10_000,
        "worker_idle_exit_s": 0.0,
    }
    return Settings.from_env({}, **(values | overrides))


async def _prepare(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        await migrate(conn, settings.db_schema, settings.db_log_schema)
    finally:
        await conn.close()
    async with Storage.open(settings) as storage:
        await storage.ensure_bucket(settings.browser_origins)


async def _drop(settings: Settings) -> None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        for schema in (settings.db_schema, settings.db_log_schema):
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@contextlib.contextmanager
def running_stack(settings: Settings, state: Path, worker: bool = True) -> Iterator[Stack]:
    """API, projectors and (optionally) a GPU worker for ``settings``, torn down after."""
    asyncio.run(_prepare(settings))
    stack = Stack(settings=settings, state=state)
    try:
        stack.start("api", ["api"])
        stack.start("projectors", ["project"])
        if worker:
            stack.start("worker", ["worker"])
        stack.wait_api()
        yield stack
    finally:
        for name in list(stack.procs):
            stack.stop(name)
        asyncio.run(_drop(settings))
        client = stack.redis()
        keys = list(client.scan_iter(match=f"{settings.redis_prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def wait_until(condition: Any, what: str, within_s: float = 60, every_s: float = 0.2) -> Any:
    """Poll ``condition()`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + within_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within_s:.0f} s (last: {value!r})")
        time.sleep(every_s)


def upload_scenes(stack: Stack, count: int, name: str = "scenes") -> tuple[str, list[str]]:
    """A dataset of ``count`` real photos uploaded and registered through the API."""
    photos = [p.read_bytes() for p in real_photos()]
    with stack.client() as client, httpx.Client(timeout=60) as plain:
        dataset_id = client.post("/datasets", json={"name": name}).json()["dataset_id"]
        files = [
            {
                "filename": f"p{i}.jpg",
                "content_type": "image/jpeg",
                "size_bytes": len(photos[i % 3]),
            }
            for i in range(count)
        ]
        uploads = client.post(f"/datasets/{dataset_id}/presign", json={"files": files}).json()[
            "uploads"
        ]
        for i, upload in enumerate(uploads):
            put = plain.post(upload["url"], **form_parts(upload, photos[i % 3]))
            put.raise_for_status()
        scene_ids = [u["scene_id"] for u in uploads]
        registered = client.post(
            f"/datasets/{dataset_id}/register-scenes",
            json={"scenes": [{"scene_id": s} for s in scene_ids]},
        )
        registered.raise_for_status()
    return dataset_id, scene_ids


def start_job(stack: Stack, dataset_id: str, **body: Any) -> str:
    with stack.client() as client:
        job = client.post("/jobs", json={"dataset_id": dataset_id, **body})
        job.raise_for_status()
        return str(job.json()["job_id"])


def job_entries(stack: Stack, job_id: str) -> list[str]:
    """The entry ids of the job's stream in Redis, in order."""
    from modomo.streams.keys import Keys

    with stack.redis() as client:
        rows: Any = client.xrange(Keys(stack.settings.redis_prefix).job_events(job_id))
    return [row[0].decode() for row in rows]
