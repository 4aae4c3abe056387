"""``modomo up`` supervises its children: a killed child is restarted and the restart
logged, SIGTERM and SIGINT (sent to its pid, with no terminal) stop every child and its
process group, and a child that keeps crashing makes ``up`` exit non-zero."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from modomo.demo import procs
from modomo.demo.services import free_port
from modomo.settings import Settings
from tests.integration.support import ROOT, settings_env, wait_for

pytestmark = pytest.mark.integration


def _up_settings(db_settings: Settings, tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "s3_endpoint_url": f"http://127.0.0.1:{free_port()}",  # nothing there: up starts one
        "s3_bucket": f"u-{db_settings.redis_prefix}",
        "api_port": free_port(),
        "worker_http_port": free_port(),
        "metrics_port": free_port(),
        "model_profile": "tiny",
        "model_dir": str(tmp_path / "models"),
        "log_format": "json",
        "supervisor_max_restarts": 2,
    }
    values.update(overrides)
    return msgspec.structs.replace(db_settings, **values)  # type: ignore[arg-type]


def _start_up(
    settings: Settings, tmp_path: Path, ignore_sigint: bool = False
) -> subprocess.Popen[bytes]:
    def background() -> None:
        # What a non-interactive shell does to a job it starts with `&`.
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    with (tmp_path / "up.log").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "modomo.cli", "up", "--state", str(tmp_path / "state")],
            cwd=ROOT,
            env=settings_env(settings) | {"HF_HUB_OFFLINE": "1", "YOLO_OFFLINE": "1"},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=background if ignore_sigint else None,
        )


def _with_prefix(prefix: str) -> list[int]:
    """Live processes started with this test's settings (children left behind included)."""
    return procs.with_env("MODOMO_REDIS_PREFIX", prefix)


async def _wait_text(path: Path, text: str, proc: subprocess.Popen[bytes], within: float) -> None:
    async def seen() -> bool:
        written = await asyncio.to_thread(path.read_text)
        if proc.poll() is not None:
            raise AssertionError(f"up exited with {proc.returncode}: {written[-3000:]}")
        return text in written

    await wait_for(seen, within=within, what=repr(text))


def _kind(cmdline: str) -> str:
    """Which service a child's command line runs."""
    if "/weed " in cmdline:
        return "weed"
    return next((k for k in ("worker", "project", "api") if f"modomo.cli {k}" in cmdline), cmdline)


async def test_up_restarts_a_killed_child_then_sigterm_stops_every_group(
    db_settings: Settings, tmp_path: Path
) -> None:
    settings = _up_settings(db_settings, tmp_path)
    up = _start_up(settings, tmp_path)
    log = tmp_path / "up.log"
    try:
        await _wait_text(log, "Modomo is up", up, within=240)
        children = procs.children(up.pid)
        kinds = {_kind(cmd): pid for pid, cmd in children.items()}
        assert {"worker", "project", "api", "weed"} <= set(kinds), children
        groups = {pid for pid in children}  # each child leads its own group
        assert all(procs.stat(p) is not None and procs.stat(p)[1] == p for p in groups)  # type: ignore[index]

        os.kill(kinds["worker"], signal.SIGKILL)
        await _wait_text(log, "child_restarted", up, within=30)
        assert "child_exited" in log.read_text()
        new = {p: c for p, c in procs.children(up.pid).items() if _kind(c) == "worker"}
        assert len(new) == 1
        assert set(new) != {kinds["worker"]}
        groups |= set(new)

        stopped_at = time.monotonic()
        up.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(up.wait, 30)
        assert time.monotonic() - stopped_at < 15
    finally:
        if up.poll() is None:
            up.kill()
    assert code == 0, log.read_text()[-3000:]
    assert procs.in_groups(groups) == []
    assert _with_prefix(settings.redis_prefix) == []


async def test_sigint_to_the_pid_of_up_in_the_background_stops_everything(
    db_settings: Settings, tmp_path: Path
) -> None:
    # Without the worker's HTTP port `up` does not wait for its models: ready sooner.
    settings = _up_settings(db_settings, tmp_path, worker_http_port=0)
    up = _start_up(settings, tmp_path, ignore_sigint=True)
    try:
        await _wait_text(tmp_path / "up.log", "Modomo is up", up, within=120)
        groups = set(procs.children(up.pid))
        assert len(groups) == 5  # S3, API, projectors, exporter, worker
        up.send_signal(signal.SIGINT)
        code = await asyncio.to_thread(up.wait, 30)
    finally:
        if up.poll() is None:
            up.kill()
    assert code == 0
    assert procs.in_groups(groups) == []
    assert _with_prefix(settings.redis_prefix) == []


async def test_a_crash_looping_child_makes_up_exit_non_zero(
    db_settings: Settings, tmp_path: Path
) -> None:
    # The projectors cannot serve their metrics on a port something else holds: each
    # start fails at once.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = _up_settings(
            db_settings, tmp_path, metrics_port=taken.getsockname()[1], worker_http_port=0
        )
        up = _start_up(settings, tmp_path)
        try:
            code = await asyncio.to_thread(up.wait, 120)
        finally:
            if up.poll() is None:
                up.kill()
    text = (tmp_path / "up.log").read_text()
    assert code == 1, text[-3000:]
    assert "projectors exited 3 times" in text
    assert text.count("child_restarted") >= 2
    assert _with_prefix(settings.redis_prefix) == []
