"""Redis password and TLS through the URL, and the ``modomo`` command line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import AuthenticationError

from modomo.demo.services import free_port
from modomo.domain.events import DatasetCreated
from modomo.settings import Settings
from modomo.streams.connection import connect
from modomo.streams.keys import Keys
from modomo.streams.log import EventLog
from tests.integration.handlers import behave
from tests.integration.support import ROOT, enqueue, running, settings_env, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A redis-server of our own speaking only TLS and asking for a password."""
    folder = tmp_path_factory.mktemp("tls")
    ca_key, ca_crt = folder / "ca.key", folder / "ca.crt"
    key, csr, crt = folder / "redis.key", folder / "redis.csr", folder / "redis.crt"
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)  # noqa: E731
    run(
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=modomo-test-ca",
        "-keyout",
        str(ca_key),
        "-out",
        str(ca_crt),
    )
    run(
        "openssl",
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        str(key),
        "-out",
        str(csr),
    )
    ext = folder / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "openssl",
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca_crt),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        str(ext),
        "-out",
        str(crt),
    )
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            str(crt),
            "--tls-key-file",
            str(key),
            "--tls-ca-cert-file",
            str(ca_crt),
            "--tls-auth-clients",
            "no",
            "--requirepass",
            "s3cret",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.05)
    yield port, ca_crt
    proc.terminate()
    proc.wait(10)


async def test_password_and_tls_come_from_the_url(tls_redis: tuple[int, Path], prefix: str) -> None:
    port, ca = tls_redis
    url = f"rediss://:s3cret@127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"
    settings = Settings.from_env({}, redis_url=url, redis_prefix=prefix)
    client = connect(settings)
    try:
        appended = await EventLog(client, Keys(prefix)).append(
            [DatasetCreated(dataset_id="d1", name="over tls")]
        )
        assert await client.xlen(Keys(prefix).events) == 1
        assert appended.log_ids
    finally:
        await client.aclose()
    assert settings.redis_url_redacted.startswith(f"rediss://:***@127.0.0.1:{port}/0")

    wrong = connect(Settings.from_env({}, redis_url=url.replace("s3cret", "nope")))
    with pytest.raises(AuthenticationError):
        await wrong.ping()
    await wrong.aclose()


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "modomo.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_malformed_setting_stops_the_cli_with_a_sentence_naming_it() -> None:
    env = dict(os.environ, MODOMO_MAX_ATTEMPTS="three")
    result = _cli("queue", "stats", env=env)
    assert result.returncode == 2
    assert "MODOMO_MAX_ATTEMPTS" in result.stderr
    assert "'three'" in result.stderr


def test_unreachable_redis_is_a_clear_error_without_the_password() -> None:
    env = dict(os.environ, MODOMO_REDIS_URL=f"redis://:hunter2@127.0.0.1:{free_port()}/0")
    result = _cli("dead", "list", env=env)
    assert result.returncode == 1
    assert "cannot reach Redis" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


async def test_dead_list_and_retry_from_the_cli(redis: Redis, settings: Settings) -> None:
    env = settings_env(settings)
    assert "the dead stream is empty" in _cli("dead", "list", env=env).stdout
    _job_id, _ = await enqueue(redis, settings, ["flaky3-cli", "fail-cli"])
    keys = Keys(settings.redis_prefix)
    async with running(redis, settings, behave):

        async def two_dead() -> bool:
            return int(await redis.xlen(keys.dead)) == 2

        await wait_for(two_dead, what="both tasks to die")

        listing = _cli("dead", "list", env=env)
        assert listing.returncode == 0
        lines = listing.stdout.strip().splitlines()
        assert len(lines) == 3
        assert "last error" in lines[0]
        assert any("flaky3-cli" in line and "transient failure 3" in line for line in lines)

        as_json = _cli("dead", "list", "--json", env=env)
        assert as_json.stdout.count('"attempts":3') == 2

        missing = _cli("dead", "retry", "1-1", env=env)
        assert missing.returncode == 1
        assert "no dead task with id 1-1" in missing.stderr

        retried = _cli("dead", "retry", "--all", env=env)
        assert retried.returncode == 0, retried.stderr
        assert "re-enqueued 2 task(s), skipped 0" in retried.stdout

        async def flaky_done() -> bool:
            return int(await redis.llen(f"{settings.redis_prefix}:test:calls:flaky3-cli")) == 4

        await wait_for(flaky_done, what="the retried flaky task")

        async def fail_dead_again() -> bool:
            return int(await redis.xlen(keys.dead)) == 1

        await wait_for(fail_dead_again, what="the hopeless task to die again")

    stats = _cli("queue", "stats", env=env)
    assert "dead 1" in stats.stdout
    assert "dead-lettered (attempts_exhausted): 3" in stats.stdout
