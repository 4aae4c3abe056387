"""Projectors against the real PostgreSQL and Redis: exactness, parking, replay."""

from __future__ import annotations

import contextlib
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from redis.asyncio import Redis

from modomo.domain.events import (
    DatasetCreated,
    EventBase,
    JobCreated,
    ModelRef,
    ObjectCorrected,
    RegisteredScene,
    ReviewSubmitted,
    SceneCaptioned,
    ScenesRegistered,
)
from modomo.domain.fold import fold_job
from modomo.domain.views import SceneView, Unapplicable, apply_scene_view, register
from modomo.projections import db
from modomo.projections.registry import READ_MODEL_PROJECTORS, READ_TABLES, select
from modomo.projections.replay import replay
from modomo.projections.status import statuses, trim_log
from modomo.settings import Settings
from modomo.streams.keys import EVENT_FIELD, Keys
from modomo.synthetic.log import synthetic_log
from tests.integration.projection_support import _norm, dump, project, publish

pytestmark = pytest.mark.integration


def pure_scenes(events: list[EventBase]) -> dict[str, SceneView]:
    """The scene read model by the pure fold alone, in memory."""
    views: dict[str, SceneView] = {}
    for event in events:
        if isinstance(event, ScenesRegistered):
            for scene in event.scenes:
                views[scene.scene_id] = register(
                    views.get(scene.scene_id), event.dataset_id, scene, event.at
                )
        elif (scene_id := getattr(event, "scene_id", None)) in views and not isinstance(
            event, ReviewSubmitted
        ):
            with contextlib.suppress(Unapplicable):
                apply_scene_view(views[scene_id], event)
    return views


def _rows(structs: Any) -> list[tuple[Any, ...]]:
    return sorted((tuple(_norm(v) for v in msgspec.structs.astuple(s)) for s in structs), key=repr)


def _children(views: Any, part: str) -> list[tuple[Any, ...]]:
    """A scene's child rows as the projector stores them: each with its scene's org."""
    return sorted(
        (
            tuple(_norm(x) for x in (*msgspec.structs.astuple(r), v.row.org_id))
            for v in views
            for r in getattr(v, part).values()
        ),
        key=repr,
    )


@hsettings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 10_000), scenes=st.integers(1, 30), batch=st.integers(1, 97))
async def test_projected_tables_agree_with_the_pure_fold(
    redis: Redis, db_settings: Settings, seed: int, scenes: int, batch: int
) -> None:
    settings = msgspec.structs.replace(
        db_settings, projector_batch=batch, redis_prefix=f"{db_settings.redis_prefix}{seed}"
    )
    events = synthetic_log(seed, scenes)
    try:
        last = await publish(redis, settings, events)
        await project(redis, settings, last)
        tables = await dump(settings)
    finally:
        conn = await db.connect(settings)
        for table in (
            *READ_TABLES,
            "projector_checkpoints",
            "parked_events",
            "event_log",
            "log_checkpoints",
        ):
            await conn.execute(f"TRUNCATE {table}")
        await conn.close()
        await redis.delete(
            Keys(settings.redis_prefix).events,
            *(
                Keys(settings.redis_prefix).job_events(e.job_id)
                for e in events
                if isinstance(e, JobCreated)
            ),
        )

    views = pure_scenes(events).values()
    assert tables["scenes"] == _rows(v.row for v in views)
    assert tables["objects"] == _children(views, "objects")
    assert tables["scene_styles"] == _children(views, "styles")
    assert tables["object_materials"] == _children(views, "materials")

    # Jobs against the independent domain fold of each job's events.
    jobs = {row[0]: row for row in tables["jobs"]}
    for created in (e for e in events if isinstance(e, JobCreated)):
        state = fold_job(e for e in events if getattr(e, "job_id", None) == created.job_id)
        assert state is not None
        summary = state.summary()
        row = jobs[created.job_id]
        assert row[2:9] == (
            summary.status,
            summary.total,
            summary.queued,
            summary.running,
            summary.ok,
            summary.partial,
            summary.failed,
        )
    assert len(tables["reviews"]) == sum(isinstance(e, ReviewSubmitted) for e in events)
    assert [r[0] for r in tables["datasets"]] == [
        e.dataset_id for e in events if isinstance(e, DatasetCreated)
    ]


async def test_parked_events_do_not_stop_the_events_behind_them(
    redis: Redis, db_settings: Settings
) -> None:
    settings = db_settings
    good = synthetic_log(3, 4, reviews=False, rerun=False)
    registered = next(e for e in good if isinstance(e, ScenesRegistered)).scenes[0].scene_id
    bad: list[EventBase] = [
        SceneCaptioned(
            job_id="j", scene_id="never-registered", model=ModelRef(id="blip"), caption="a room"
        ),
        ObjectCorrected(object_id="no-such-object", scene_id=registered, category="sofa"),
    ]
    last = await publish(redis, settings, [*good[:3], *bad, *good[3:]])
    await Redis.xadd(redis, Keys(settings.redis_prefix).events, {EVENT_FIELD: b"garbage"})
    tail = ScenesRegistered(
        dataset_id="d2",
        scenes=(RegisteredScene(scene_id="late-scene", r2_key_original="scenes/late-scene.jpg"),),
    )
    last = await publish(redis, settings, [tail])
    await project(redis, settings, last)

    conn = await db.connect(settings)
    try:
        parked = await conn.fetch(
            "SELECT projector, event_type, reason FROM parked_events ORDER BY projector, entry_id"
        )
        assert await conn.fetchval("SELECT count(*) FROM scenes WHERE scene_id = 'late-scene'") == 1
        rows = await statuses(conn, redis, Keys(settings.redis_prefix).events)
    finally:
        await conn.close()
    reasons = {(p["projector"], p["reason"]) for p in parked}
    assert ("scenes", "scene never-registered is not registered") in reasons
    assert ("scenes", f"object no-such-object is not in scene {registered}") in reasons
    assert ("jobs", "job j does not exist") in reasons
    assert any(p == "scenes" and r.startswith("not a JSON object") for p, r in reasons)
    by_name = {r.name: r for r in rows}
    assert by_name["scenes"].parked == 3
    assert by_name["archive"].parked == 0
    assert all(r.lag == 0 for r in rows)


async def test_replay_from_archive_or_redis_rebuilds_identical_tables(
    redis: Redis, db_settings: Settings
) -> None:
    settings = db_settings
    events = synthetic_log(11, 40)
    last = await publish(redis, settings, events)
    await project(redis, settings, last)
    live = await dump(settings)

    # Damage the live tables, then rebuild them from the archive and swap them in.
    conn = await db.connect(settings)
    await conn.execute("DELETE FROM objects WHERE confidence > 0.5")
    await conn.execute("UPDATE jobs SET ok = 0")
    checkpoints = await conn.fetch("SELECT name, position FROM projector_checkpoints ORDER BY 1")
    await conn.close()
    preview = await replay(settings, select(list(READ_MODEL_PROJECTORS)), dry_run=True)
    assert preview.changes["objects"][0] == 0
    assert preview.changes["objects"][1] > 0
    assert preview.changes["jobs"] == (len(live["jobs"]), len(live["jobs"]))
    assert preview.changes["scenes"] == (0, 0)
    result = await replay(settings, select(list(READ_MODEL_PROJECTORS)))
    assert result.swapped
    assert result.events == len(events)
    assert result.last_position == last
    assert await dump(settings) == live

    conn = await db.connect(settings)
    after = await conn.fetch("SELECT name, position FROM projector_checkpoints ORDER BY 1")
    leftovers = await conn.fetchval(
        "SELECT count(*) FROM pg_namespace WHERE nspname = $1", f"{settings.db_schema}_shadow"
    )
    await conn.close()
    assert [tuple(r) for r in after] == [tuple(r) for r in checkpoints]
    assert leftovers == 0

    from_redis = await replay(
        settings, select(["scenes"]), redis=redis, into="t_fromredis_" + settings.redis_prefix
    )
    assert not from_redis.swapped
    rebuilt = await dump(
        settings,
        schema=from_redis.schema,
        tables=("scenes", "objects", "scene_styles", "object_materials"),
    )
    assert rebuilt == {t: live[t] for t in rebuilt}
    conn = await db.connect(settings)
    await conn.execute(f'DROP SCHEMA "{from_redis.schema}" CASCADE')
    await conn.close()


async def test_replay_until_shows_the_tables_as_they_stood(
    redis: Redis, db_settings: Settings
) -> None:
    settings = db_settings
    events = synthetic_log(5, 10)
    corrections = [i for i, e in enumerate(events) if isinstance(e, ObjectCorrected)]
    assert corrections, "the sample log should hold a correction"
    before = events[: corrections[0]]
    middle = await publish(redis, settings, before)
    last = await publish(redis, settings, events[corrections[0] :])
    await project(redis, settings, last)

    result = await replay(settings, select(["scenes", "jobs"]), until_id=middle)
    assert result.schema == f"{settings.db_schema}_asof"
    assert not result.swapped
    then = await dump(settings, schema=result.schema, tables=("objects",))
    now = await dump(settings, tables=("objects",))
    corrected_then = [r for r in then["objects"] if r[13] is not None]
    corrected_now = [r for r in now["objects"] if r[13] is not None]
    assert corrected_then == []
    assert corrected_now

    by_time = await replay(
        settings, select(["scenes"]), until_at=before[-1].at, into=f"{settings.db_schema}_t"
    )
    assert by_time.events == len(before)


async def test_trim_keeps_what_a_projector_still_needs_and_catches_up_from_the_archive(
    redis: Redis, db_settings: Settings
) -> None:
    settings = db_settings
    keys = Keys(settings.redis_prefix)
    events = synthetic_log(8, 10)
    half = len(events) // 2
    conn = await db.connect(settings)
    try:
        assert await trim_log(conn, redis, keys.events) == 0  # nobody has started
        middle = await publish(redis, settings, events[:half])
        await project(redis, settings, middle)
        assert await trim_log(conn, redis, keys.events) == half
        assert await redis.xlen(keys.events) == 0
        last = await publish(redis, settings, events[half:])
        await project(redis, settings, last, names=("archive", "scenes"))
        # The jobs projector lags: only what the slowest has applied goes.
        assert await trim_log(conn, redis, keys.events) == 0
        # A projector rebuilt from zero reads the trimmed part from event_log.
        await conn.execute("DELETE FROM projector_checkpoints WHERE name = 'datasets'")
        await conn.execute("TRUNCATE datasets")
    finally:
        await conn.close()
    await project(redis, settings, last)
    tables = await dump(settings, tables=("datasets",))
    assert len(tables["datasets"]) == 1


async def test_stats_agree_with_the_rows_and_the_pure_fold(
    redis: Redis, db_settings: Settings
) -> None:
    from collections import Counter

    from modomo.read.stats import KINDS, distribution, overview

    settings = db_settings
    events = synthetic_log(13, 60)
    last = await publish(redis, settings, events)
    await project(redis, settings, last)
    views = list(pure_scenes(events).values())
    conn = await db.connect(settings)
    # The read layer sees the organisation its transaction names (the API's OrgScope);
    # on this session connection, naming it for the session does the same.
    await conn.execute("SELECT set_config('modomo.org', 'default', false)")
    try:
        summary = await overview(conn)
        dists = {kind: await distribution(conn, kind) for kind in KINDS}
        with pytest.raises(KeyError, match="one of: scene_type"):
            await distribution(conn, "weather")
        dataset = await conn.fetchval("SELECT dataset_id FROM datasets")
        only_other = await distribution(conn, "category", dataset_id="no-such-dataset")
        only_this = await distribution(conn, "category", dataset_id=dataset)
    finally:
        await conn.close()

    objects = [o for v in views for o in v.objects.values()]
    assert summary.scenes == len(views)
    assert summary.objects == len(objects)
    assert summary.datasets == 1
    assert summary.corrected_objects == sum(o.corrected_by is not None for o in objects)
    assert summary.scenes_by_status == dict(Counter(v.row.status for v in views))
    assert sum(summary.jobs_by_status.values()) == 2
    categories = Counter(o.category_code for o in objects)
    assert {b.key: b.count for b in dists["category"]} == dict(categories)
    assert [b.count for b in dists["category"]] == sorted(categories.values(), reverse=True)
    assert {b.key: b.count for b in dists["scene_type"]} == dict(
        Counter(v.row.scene_type for v in views if v.row.scene_type)
    )
    assert {b.key: b.count for b in dists["style"]} == dict(
        Counter(s for v in views for s in v.styles)
    )
    assert {b.key: b.count for b in dists["material"]} == dict(
        Counter(code for v in views for (_, code) in v.materials)
    )
    assert sum(b.count for b in dists["colour"]) == sum(len(v.row.palette or ()) for v in views)
    assert sum(b.count for b in dists["confidence"]) == len(objects)
    assert all(b.key in {f"{i / 10:.1f}" for i in range(10)} for b in dists["confidence"])
    assert abs(sum(b.share for b in dists["category"]) - 1) < 1e-3
    assert only_other == []
    assert only_this == dists["category"]


async def test_replay_under_live_projectors_and_readers_swaps_without_a_gap(
    redis: Redis, db_settings: Settings
) -> None:
    import asyncio

    from modomo.projections.runner import ProjectorRunner

    settings = db_settings
    events = synthetic_log(17, 120)
    half = len(events) // 2
    first = await publish(redis, settings, events[:half])
    await project(redis, settings, first)
    conn = await db.connect(settings)
    scenes_before = await conn.fetchval("SELECT count(*) FROM scenes")
    await conn.close()

    runners = [ProjectorRunner(settings, redis, p, lease_poll_s=0.05) for p in select(None)]
    tasks = [asyncio.create_task(r.run()) for r in runners]
    seen_counts: list[int] = []
    reading = True

    async def reader() -> None:
        reader_conn = await db.connect(settings)
        try:
            while reading:
                seen_counts.append(await reader_conn.fetchval("SELECT count(*) FROM scenes"))
                await asyncio.sleep(0)
        finally:
            await reader_conn.close()

    read_task = asyncio.create_task(reader())
    try:
        result = await replay(settings, select(list(READ_MODEL_PROJECTORS)))
        assert result.swapped
        last = await publish(redis, settings, events[half:])

        async def done() -> bool:
            from tests.integration.projection_support import caught_up

            return await caught_up(settings, list(READ_MODEL_PROJECTORS), last)

        from tests.integration.support import wait_for

        await wait_for(done, what="live projectors to carry on after the swap")
    finally:
        reading = False
        await read_task
        for runner in runners:
            runner.stop()
        await asyncio.gather(*tasks)
    assert seen_counts
    assert min(seen_counts) == scenes_before  # never an empty or half-built table

    rebuilt = await replay(
        settings, select(list(READ_MODEL_PROJECTORS)), into=f"{settings.db_schema}_x"
    )
    tables = ("scenes", "objects", "scene_styles", "object_materials", "jobs", "job_scenes")
    assert await dump(settings, tables=tables) == await dump(
        settings, schema=rebuilt.schema, tables=tables
    )


async def test_projection_commands_from_the_cli(redis: Redis, db_settings: Settings) -> None:
    import asyncio
    import subprocess
    import sys

    from tests.integration.support import ROOT, settings_env

    settings = db_settings
    last = await publish(redis, settings, synthetic_log(2, 5))
    env = settings_env(settings)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "modomo.cli", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )

    before = await asyncio.to_thread(cli, "projections", "status")
    assert before.returncode == 0, before.stderr
    assert "scenes" in before.stdout
    assert " 0-0 " in before.stdout  # nothing applied yet
    await project(redis, settings, last)
    after = await asyncio.to_thread(cli, "projections", "status")
    assert last in after.stdout
    dry = await asyncio.to_thread(cli, "replay", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "scenes: 0 row(s) would go, 0 would come" in dry.stdout
    rebuilt = await asyncio.to_thread(cli, "replay", "scenes")
    assert "swapped the rebuilt tables" in rebuilt.stdout
    bad = await asyncio.to_thread(cli, "replay", "--until", "yesterday")
    assert bad.returncode == 2
    assert "--until takes an entry id" in bad.stderr
    unknown = await asyncio.to_thread(cli, "replay", "nonsense")
    assert unknown.returncode == 2
    assert "unknown projector" in unknown.stderr
    trimmed = await asyncio.to_thread(cli, "trim")
    assert trimmed.returncode == 0
    assert "trimmed" in trimmed.stdout
    assert await redis.xlen(Keys(settings.redis_prefix).events) == 0
