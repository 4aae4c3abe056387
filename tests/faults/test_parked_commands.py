"""Operators act on parked events: ``modomo projections parked list|retry|skip``, with
exit codes and sentences, while the projectors keep running."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from redis.asyncio import Redis

from modomo.cli import _parser
from modomo.domain.events import (
    ModelRef,
    RegisteredScene,
    SceneCaptioned,
    SceneClassified,
    ScenesRegistered,
)
from modomo.projections.registry import select
from modomo.projections.runner import ProjectorRunner
from modomo.settings import Settings
from modomo.streams.keys import EVENT_FIELD, Keys
from tests.integration.projection_support import caught_up, publish
from tests.integration.support import ROOT, settings_env, wait_for

pytestmark = pytest.mark.integration

_LOG_LINE = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[|\{")')


async def _modomo(settings: Settings, *args: str) -> tuple[int, str, str]:
    """``modomo projections parked <args>`` as a process of its own."""
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "modomo.cli", "projections", "parked", *args],
        cwd=ROOT,
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, result.stdout, result.stderr


@pytest.fixture
def parked_cli(
    db_settings: Settings, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Awaitable[tuple[int, str, str]]]:
    """The same command parsed by the ``modomo`` parser and run on this event loop, which
    spares a second of start-up per call (logging is left as the tests set it up)."""

    def lines(text: str) -> str:
        # The projectors running in this process log too: keep only the command's words.
        kept = [line for line in text.splitlines() if not _LOG_LINE.match(line)]
        return "\n".join(kept) + "\n"

    async def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            parsed = _parser().parse_args(["projections", "parked", *args])
            code = await parsed.run(parsed, db_settings)
        except SystemExit as exc:  # argparse's usage errors
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return code, lines(captured.out), lines(captured.err)

    return run


async def _caption(settings: Settings, scene_id: str) -> str | None:
    conn = await asyncpg.connect(settings.database_url)
    try:
        value: str | None = await conn.fetchval(
            f'SELECT caption FROM "{settings.db_schema}".scenes WHERE scene_id = $1', scene_id
        )
    finally:
        await conn.close()
    return value


async def test_list_retry_after_a_fix_and_skip(
    redis: Redis,
    db_settings: Settings,
    parked_cli: Callable[..., Awaitable[tuple[int, str, str]]],
) -> None:
    settings = db_settings
    # Parked: a caption for a scene not registered yet, and a name PostgreSQL cannot store.
    early = await publish(
        redis,
        settings,
        [SceneCaptioned(job_id="j", scene_id="s1", model=ModelRef(id="blip"), caption="a den")],
    )
    log = Keys(settings.redis_prefix).events
    garbage = (await redis.xadd(log, {EVENT_FIELD: b"not json"})).decode()
    bad = (
        await redis.xadd(
            log, {EVENT_FIELD: b'{"type":"dataset_created","dataset_id":"d","name":"a\\u0000"}'}
        )
    ).decode()
    runners = [ProjectorRunner(settings, redis, p, lease_poll_s=0.05) for p in select(None)]
    tasks = [asyncio.create_task(r.run()) for r in runners]
    try:
        # The fix: the scene gets registered after its caption was parked.
        last = await publish(
            redis,
            settings,
            [
                ScenesRegistered(
                    dataset_id="d",
                    scenes=(RegisteredScene(scene_id="s1", r2_key_original="scenes/s1.jpg"),),
                )
            ],
        )

        async def done() -> bool:
            return await caught_up(settings, ["scenes", "datasets"], last)

        await wait_for(done, what="the projectors to catch up")
        code, out, _ = await _modomo(settings, "list")
        assert code == 0
        assert early in out
        assert bad in out
        assert "scene s1 is not registered" in out
        assert "name contains a NUL character" in out
        assert garbage in out  # unreadable, parked by every projector that parks

        code, out, err = await parked_cli("retry", "scenes", early)
        assert (code, out.strip()) == (0, f"{early} applied by scenes"), err
        assert await _caption(settings, "s1") == "a den"
        # The running projector forgot what it held about s1: a later event keeps the caption.
        last = await publish(
            redis,
            settings,
            [
                SceneClassified(
                    job_id="j",
                    scene_id="s1",
                    model=ModelRef(id="clip"),
                    scene_type="bedroom",
                    confidence=0.9,
                )
            ],
        )
        await wait_for(lambda: caught_up(settings, ["scenes"], last), what="the next event")
        assert await _caption(settings, "s1") == "a den"

        code, _, err = await parked_cli("retry", "datasets", bad)
        assert code == 1
        assert f"{bad} is still refused: name contains a NUL character" in err
        code, out, _ = await parked_cli("skip", "datasets", bad)
        assert (code, out.strip()) == (0, f"{bad} skipped for datasets")
        code, _, err = await parked_cli("skip", "datasets", bad)
        assert code == 1
        assert "already resolved (skipped)" in err
        code, _, err = await parked_cli("retry", "jobs", "1-1")
        assert code == 1
        assert "no parked entry 1-1 for projector jobs" in err
        code, _, err = await parked_cli("retry", "jobs")
        assert code == 2
        assert "one of the arguments" in err

        code, out, _ = await parked_cli("skip", "scenes", "--all")
        assert code == 0
        code, out, _ = await parked_cli("list", "--projector", "scenes")
        assert (code, out.strip()) == (0, "no unresolved parked events")
        code, out, _ = await parked_cli("list", "--all", "--projector", "datasets")
        assert "skipped" in out
        assert bad in out
    finally:
        for runner in runners:
            runner.stop()
        await asyncio.gather(*tasks)
