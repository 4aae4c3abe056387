"""The deployment files that cannot run here (Docker, Railway, Runpod, GitHub Actions) are
at least well-formed and point at things that exist."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_dockerfiles_copy_only_what_exists() -> None:
    for dockerfile in (ROOT / "ops/docker").glob("*.Dockerfile"):
        text = dockerfile.read_text()
        # One unnamed final image; named build stages (FROM ... AS name) may precede it.
        assert len(re.findall(r"^FROM \S+$", text, flags=re.MULTILINE)) == 1
        for sources in re.findall(r"^COPY (?!--from=)(.+) \S+$", text, flags=re.MULTILINE):
            for source in sources.split():
                assert (ROOT / source).exists(), f"{dockerfile.name}: COPY {source}"
        assert re.search(r"^CMD \[", text, flags=re.MULTILINE), dockerfile.name


def test_railway_builds_the_api_image_and_checks_its_health() -> None:
    config = json.loads((ROOT / "railway.json").read_text())
    assert (ROOT / config["build"]["dockerfilePath"]).is_file()
    assert config["deploy"]["healthcheckPath"] == "/health"


def test_runpod_start_script_is_valid_bash_and_runs_the_worker() -> None:
    script = ROOT / "ops/runpod/start.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    assert "exec modomo worker" in script.read_text()
    assert script.stat().st_mode & 0o111


def test_github_workflow_runs_the_readme_test_command() -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/ci.yml").read_text())
    steps = [s.get("run", "") for s in workflow["jobs"]["test"]["steps"]]
    assert any(".venv/bin/just test" in run for run in steps)
    services = workflow["jobs"]["test"]["services"]
    assert {"redis", "postgres"} <= set(services)
    images = " ".join(s.get("run", "") for s in workflow["jobs"]["images"]["steps"])
    for dockerfile in (ROOT / "ops/docker").glob("*.Dockerfile"):
        assert f"ops/docker/{dockerfile.name}" in images
