"""The whole contract, from outside: schemathesis with every check and its stateful phase
against a running ``modomo up`` (real processes), then Ctrl-C stops everything.

Every check means: no 5xx, every status and content type documented, every response
matching its schema, schema-valid requests accepted and invalid ones refused, security
enforced as documented, Allow headers right. The run is deterministic (a fixed set of
cases), so a failure reproduces."""

from __future__ import annotations

import asyncio
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from modomo.demo.services import settings_env
from modomo.settings import Settings
from tests.integration.support import ROOT, stack_settings

pytestmark = pytest.mark.integration


def _wait_for_link(log: Path, proc: subprocess.Popen[bytes], within_s: float = 600) -> str:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        found = re.search(r"signed in: (\S+#token=\S+)", log.read_text())
        if found:
            return found.group(1)
        assert proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.2)
    raise AssertionError(f"modomo up printed no sign-in link: {log.read_text()[-3000:]}")


async def test_schemathesis_finds_no_contract_failure_against_modomo_up(
    db_settings: Settings, s3_endpoint: str, tmp_path: Path
) -> None:
    settings = stack_settings(
        db_settings,
        s3_endpoint,
        tmp_path,
        "f",
        # The contract, not the limit (tests/integration/test_exposure.py): past it every
        # write would be a 429 and the logic behind it go untested.
        write_rate_limit=0,
    )
    log = tmp_path / "up.log"
    with log.open("wb") as out:
        up = await asyncio.to_thread(
            subprocess.Popen,
            [sys.executable, "-m", "modomo.cli", "up", "--state", str(tmp_path / "state")],
            cwd=ROOT,
            env=settings_env(settings)
            | {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        link = await asyncio.to_thread(_wait_for_link, log, up)
        base, token = link.split("/app/")[0], link.split("#token=")[1]
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            assert (await client.get("/app/")).status_code == 200
            signed = {"Authorization": f"Bearer {token}"}
            assert (await client.get("/datasets", headers=signed)).status_code == 200
        st = shutil.which("st") or str(Path(sys.executable).parent / "st")
        result = await asyncio.to_thread(
            subprocess.run,
            [
                st,
                "run",
                f"{base}/schema/openapi.json",
                "--header",
                f"Authorization: Bearer {token}",
                "--checks",
                "all",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--max-examples",
                "20",
                "--request-timeout",
                "10",
                "--generation-deterministic",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
        report = result.stdout[-6000:] + result.stderr[-2000:]
        assert result.returncode == 0, report
        summary = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
        assert summary is not None, report
        assert summary.group(1) == summary.group(2), report
        assert int(summary.group(1)) >= 1000, report  # every operation, every phase
        assert "Failures:" not in result.stdout, report
        assert "✅ Stateful" in result.stdout, report
    finally:
        up.send_signal(signal.SIGINT)  # what Ctrl-C sends
        code = await asyncio.to_thread(up.wait, 60)
    assert code == 0, log.read_text()[-3000:]
    assert "stopping every service" in log.read_text()
    async with httpx.AsyncClient(timeout=2) as client:
        for port in (settings.api_port, settings.worker_http_port):  # every child went too
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{port}/health")
