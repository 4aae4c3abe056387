"""Row-level security is the second wall: the query layer's reads, run as a role that is not
the tables' owner and with their organisation filter stripped out, still return no other
organisation's rows. Real PostgreSQL, real projectors folding real events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec
import pytest
from redis.asyncio import Redis

from modomo.api.scope import OrgScope
from modomo.domain.events import (
    Embedding,
    EvaluationRecorded,
    EventBase,
    ExportRequested,
    JobCreated,
    ModelRef,
    ObjectsDetected,
    RegisteredScene,
    ReviewSubmitted,
    SceneClassified,
    ScenesRegistered,
)
from modomo.pg import pool as db_pool
from modomo.projections.migrate import load, migrate
from modomo.projections.registry import select
from modomo.projections.replay import replay
from modomo.read import datasets, jobs, products, review_queue, reviews, scenes, stats
from modomo.read.jobs import JobReader
from modomo.read.scenes import SceneFilter, SceneReader
from modomo.read.similarity import duplicates
from modomo.read.stats import KINDS
from modomo.settings import Settings
from modomo.synthetic.log import synthetic_log
from tests.integration.org_support import RLS_TABLES, Unfiltered, grant_reader, in_org
from tests.integration.projection_support import dump as dump_tables
from tests.integration.projection_support import project, publish

pytestmark = pytest.mark.integration

Read = Callable[[Any], Awaitable[Any]]


class Org:
    """One organisation's log and the ids in it."""

    def __init__(self, org: str, seed: int) -> None:
        events = in_org(synthetic_log(seed, 6, failure_rate=0.0), org)
        self.org = org
        job = next(e for e in events if isinstance(e, JobCreated))
        self.dataset_id, self.job_id = job.dataset_id, job.job_id
        detected = next(e for e in events if isinstance(e, ObjectsDetected) and e.objects)
        self.scene_id, self.object_id = detected.scene_id, detected.objects[0].object_id
        self.export_id, self.evaluation_id = f"{org}-export", f"{org}-evaluation"
        self.dup_scene = f"{org}-dup-scene"
        review = ReviewSubmitted(
            review_id=f"{org}-review",
            scene_id=self.scene_id,
            object_id=self.object_id,
            verdict="approve",
            org=org,
        )
        self.review_id = review.review_id
        # Only the embeddings projector reads this one (the scenes projector may park it).
        common: dict[str, Any] = {"job_id": job.job_id, "scene_id": self.scene_id, "attempt": 9}
        self.events: list[EventBase] = [
            *events,
            SceneClassified(
                **common,
                model=ModelRef(id="clip"),
                scene_type="kitchen",
                confidence=0.5,
                embedding=Embedding.of([0.6, 0.8]),
            ),
            ScenesRegistered(
                dataset_id=self.dataset_id,
                scenes=(
                    RegisteredScene(scene_id=self.dup_scene, r2_key_original="k", etag="same"),
                ),
                org=org,
            ),
            review,
            ExportRequested(
                export_id=self.export_id, dataset_id=self.dataset_id, format="coco", org=org
            ),
            EvaluationRecorded(
                evaluation_id=self.evaluation_id,
                golden="g",
                golden_sha256="ab",
                job_id=job.job_id,
                org=org,
            ),
        ]

    def ids(self) -> list[str]:
        return [
            self.dataset_id,
            self.job_id,
            self.scene_id,
            self.object_id,
            self.export_id,
            self.evaluation_id,
            self.review_id,
            self.dup_scene,
        ]


def reads(mine: Org, theirs: Org) -> dict[str, Read]:
    """Every read the API runs, aimed at the other organisation's ids where it takes one."""
    return {
        "datasets": lambda c: datasets.datasets(c, before=None, limit=100),
        "dataset": lambda c: datasets.dataset(c, theirs.dataset_id),
        "dataset_exists": lambda c: datasets.dataset_exists(c, theirs.dataset_id),
        "scenes_of": lambda c: scenes.scenes_of(c, theirs.dataset_id, SceneFilter(), None, 100),
        "scene": lambda c: scenes.scene(c, theirs.scene_id),
        "scene_document": lambda c: SceneReader().document(c, theirs.scene_id),
        "scene_exists": lambda c: scenes.scene_exists(c, theirs.scene_id),
        "scene_dataset": lambda c: scenes.scene_dataset(c, theirs.scene_id),
        "object": lambda c: scenes.object_(c, theirs.object_id),
        "object_scene": lambda c: scenes.object_scene(c, theirs.object_id),
        "originals": lambda c: scenes.originals(c, theirs.dataset_id, None),
        "jobs": lambda c: jobs.jobs(c, dataset_id=None, status=None, before=None, limit=100),
        "job": lambda c: JobReader().job(c, theirs.job_id),
        "job_exists": lambda c: jobs.job_exists(c, theirs.job_id),
        "exports": lambda c: products.exports(c, dataset_id=None, before=None, limit=100),
        "export": lambda c: products.export(c, theirs.export_id),
        "evaluations": lambda c: products.evaluations(
            c, golden_sha256=None, job_id=None, before=None, limit=100
        ),
        "evaluation": lambda c: products.evaluation(c, theirs.evaluation_id),
        "reviews_of": lambda c: reviews.reviews_of(c, theirs.scene_id),
        "review": lambda c: reviews.review(c, theirs.review_id),
        "review_queue": lambda c: review_queue.review_queue(c, theirs.dataset_id, 100),
        "overview": stats.overview,
        **{
            f"distribution:{kind}": (lambda k: lambda c: stats.distribution(c, k))(kind)
            for kind in KINDS
        },
        "duplicates": lambda c: duplicates(c, mine.dataset_id, {"new-scene": "same"}),
    }


def dump(value: Any) -> str:
    return msgspec.json.encode(value, order="deterministic").decode()


@pytest.fixture
async def two_orgs(redis: Redis, db_settings: Settings) -> tuple[Org, Org]:
    acme, globex = Org("acme", 1), Org("globex", 2)
    last = await publish(redis, db_settings, acme.events + globex.events)
    await project(redis, db_settings, last)
    return acme, globex


async def test_reads_without_their_org_filter_still_see_only_the_callers_org(
    db_settings: Settings, two_orgs: tuple[Org, Org]
) -> None:
    acme, globex = two_orgs
    role = await grant_reader(db_settings)
    pool = await db_pool(db_settings, min_size=1, max_size=2)
    try:
        owner_filtered = OrgScope(pool, "acme")  # the owner: only the filter protects
        owner_unfiltered = Unfiltered(OrgScope(pool, "acme"))
        reader_unfiltered = Unfiltered(OrgScope(pool, "acme", role))  # only RLS protects
        leaked_without_either = []
        for name, read in reads(acme, globex).items():
            expected = dump(await read(owner_filtered))
            assert not any(i in expected for i in globex.ids()), name
            assert dump(await read(reader_unfiltered)) == expected, name
            bare = dump(await read(owner_unfiltered))
            if any(i in bare for i in globex.ids()):
                leaked_without_either.append(name)
        # The stripping is real: without the filter, the owner reads the other org's rows...
        assert reader_unfiltered.removed >= len(reads(acme, globex))
        assert {"datasets", "dataset", "scene", "object", "jobs", "job", "export"} <= set(
            leaked_without_either
        ), leaked_without_either
        # ...and the reads do find the caller's own rows (an empty answer proves nothing).
        mine = dump(await reads(globex, acme)["datasets"](owner_filtered))
        assert acme.dataset_id in mine
        assert await scenes.scene_exists(reader_unfiltered, acme.scene_id)
        assert (await JobReader().job(reader_unfiltered, acme.job_id)) is not None
    finally:
        await pool.close()


async def test_every_read_model_row_is_hidden_from_another_org_and_from_no_org(
    db_settings: Settings, two_orgs: tuple[Org, Org]
) -> None:
    role = await grant_reader(db_settings)
    pool = await db_pool(db_settings, min_size=1, max_size=2)
    try:
        for table in RLS_TABLES:
            everything = await OrgScope(pool, "acme").fetch(
                f"SELECT org_id, count(*) AS n FROM {table} GROUP BY 1"
            )
            assert {r["org_id"] for r in everything} == {"acme", "globex"}, table
            for org in ("acme", "globex"):
                seen = await OrgScope(pool, org, role).fetch(
                    f"SELECT org_id, count(*) AS n FROM {table} GROUP BY 1"
                )
                assert [(r["org_id"], r["n"]) for r in seen] == [
                    (r["org_id"], r["n"]) for r in everything if r["org_id"] == org
                ], table
            # No organisation named (a forgotten set_config): nothing at all.
            nothing = await OrgScope(pool, "", role).fetchval(f"SELECT count(*) FROM {table}")
            assert nothing == 0, table
    finally:
        await pool.close()


async def test_the_policies_leave_the_owner_alone_so_projectors_fold_every_org(
    db_settings: Settings, two_orgs: tuple[Org, Org]
) -> None:
    """No FORCE ROW LEVEL SECURITY, on purpose: the projectors run as the owner."""
    conn = await asyncpg.connect(db_settings.database_url)
    try:
        forced = await conn.fetch(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = $1 AND c.relname = ANY($2::text[])",
            db_settings.db_schema,
            list(RLS_TABLES),
        )
        assert {r["relname"] for r in forced} == set(RLS_TABLES)
        assert all(r["relrowsecurity"] and not r["relforcerowsecurity"] for r in forced)
        orgs = await conn.fetch(
            f'SELECT DISTINCT org_id FROM "{db_settings.db_schema}".scenes ORDER BY 1'
        )
        assert [r["org_id"] for r in orgs] == ["acme", "globex"]
    finally:
        await conn.close()


async def test_a_replay_keeps_every_rows_org_and_the_policies(
    db_settings: Settings, two_orgs: tuple[Org, Org]
) -> None:
    before = await dump_tables(db_settings)
    result = await replay(db_settings, [p for p in select(None) if p.tables])
    assert result.swapped
    assert await dump_tables(db_settings) == before
    role = await grant_reader(db_settings)  # the swapped-in tables are new: grant again
    pool = await db_pool(db_settings, min_size=1, max_size=2)
    try:
        for table in RLS_TABLES:
            seen = await OrgScope(pool, "globex", role).fetch(
                f"SELECT DISTINCT org_id FROM {table}"
            )
            assert [r["org_id"] for r in seen] == ["globex"], table
    finally:
        await pool.close()


async def test_rows_from_before_organisations_move_into_the_default_org(
    db_settings: Settings,
) -> None:
    """Migrations up to 0059 with data in them, then the rest: every row is the default
    organisation's, visible to it under row-level security and to no other."""
    schema, log_schema = f"{db_settings.db_schema}_old", f"{db_settings.db_log_schema}_old"
    conn = await asyncpg.connect(db_settings.database_url)
    try:
        everything = load()
        await migrate(conn, schema, log_schema, [m for m in everything if m.number < 60])
        await conn.execute(
            f'INSERT INTO "{schema}".datasets (dataset_id, name, created_at) '
            "VALUES ('old', 'from before', now())"
        )
        await conn.execute(
            f'INSERT INTO "{log_schema}".api_keys (key_id, secret_hash, role) '
            "VALUES ('k0', 'h', 'admin')"
        )
        applied = await migrate(conn, schema, log_schema, everything)
        assert {"0060_org_read_models.sql", "0061_org_log.sql"} <= set(applied)
        assert await conn.fetchval(f'SELECT org_id FROM "{schema}".datasets') == "default"
        assert await conn.fetchval(f'SELECT org FROM "{log_schema}".api_keys') == "default"
    finally:
        await conn.close()
    old = msgspec.structs.replace(db_settings, db_schema=schema, db_log_schema=log_schema)
    role = await grant_reader(old)
    pool = await db_pool(old, min_size=1, max_size=2)
    try:
        assert await datasets.dataset_exists(OrgScope(pool, "default", role), "old")
        assert not await datasets.dataset_exists(OrgScope(pool, "acme", role), "old")
    finally:
        await pool.close()
