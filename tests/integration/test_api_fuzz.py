"""Schemathesis against the API's own OpenAPI document: no input gives a 5xx."""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from modomo.settings import Settings
from tests.integration.api_support import running_api

pytestmark = pytest.mark.integration


async def test_no_generated_request_gives_a_server_error(
    db_settings: Settings, s3_endpoint: str, tmp_path: Path
) -> None:
    st = shutil.which("st") or str(Path(sys.executable).parent / "st")
    async with running_api(db_settings, s3_endpoint) as api, api.client() as client:
        dataset = (await client.post("/datasets", json={"name": "fuzz"})).json()
        assert dataset["dataset_id"]
        result = await asyncio.to_thread(
            subprocess.run,
            [
                st,
                "run",
                f"{api.url}/schema/openapi.json",
                "--header",
                f"Authorization: Bearer {api.token('admin')}",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "25",
                "--request-timeout",
                "10",
                "--generation-deterministic",
                "--exclude-path",
                "/jobs/{job_id}/events",
                "--phases",
                "examples,fuzzing",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp_path,
        )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    passed = re.search(r"(\d+) passed", result.stdout)
    assert passed is not None, result.stdout[-3000:]
    assert int(passed.group(1)) >= 15  # every operation but the SSE stream was fuzzed
    assert "failed" not in result.stdout.split("Fuzzing", 1)[1].split("WARNINGS", 1)[0]
