"""Servers a fault test (or ``bench/chaos.py``) can kill and restart: Redis with AOF,
SeaweedFS, each on free ports of its own, with its data kept across restarts.

    with RedisServer(tmp_path) as server:      # redis-server --appendonly yes on a free port
        ...
        server.kill()                          # SIGKILL: no shutdown, AOF as last synced
        server.start()                         # same port, same data folder
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

import redis

from modomo.demo.services import free_port
from tests.integration.s3 import SeaweedFS

__all__ = ["RedisServer", "SeaweedFS"]


class RedisServer:
    """A ``redis-server`` with AOF (``appendfsync everysec``) on a free loopback port."""

    def __init__(self, folder: Path, *, fsync: str = "everysec") -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.fsync = fsync
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

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

    def kill(self) -> None:
        """SIGKILL: the server dies without a shutdown (AOF as last fsynced)."""
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

    def log_tail(self, chars: int = 2000) -> str:
        path = self.folder / "redis.log"
        return path.read_text()[-chars:] if path.exists() else ""

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
