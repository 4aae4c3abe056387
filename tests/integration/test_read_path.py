"""The read path's speed-ups, for what they change in behaviour: media links against the
real S3 server, kept scene documents and job timings, the SSE hub (one reader, paged
history, resumption, trimmed history, keep-alives, overflow), several API processes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import msgspec
import psutil
import pytest
from redis.asyncio import Redis

from modomo import pg
from modomo.api import sse
from modomo.api.hub import JobStreamHub, Overflowed
from modomo.api.links import MediaLinks, media_key
from modomo.demo.services import free_port
from modomo.domain.events import EventBase, JobCompleted, JobCreated, SceneStarted
from modomo.read.jobs import JobReader
from modomo.read.scenes import SceneReader
from modomo.settings import Settings
from modomo.streams.connection import connect
from modomo.streams.keys import Keys
from modomo.streams.log import EventLog
from modomo.synthetic.log import synthetic_log
from tests.integration.api_support import PNG, Api, dataset_with_scenes, running_api
from tests.integration.projection_support import project, publish
from tests.integration.support import settings_env, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(db_settings: Settings, s3_endpoint: str) -> AsyncIterator[Api]:
    async with running_api(db_settings, s3_endpoint) as running_:
        yield running_


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    for name, value in changes.items():
        query[name] = [value]
    return urlunsplit(parts._replace(query=urlencode(query, doseq=True)))


def _flip(text: str) -> str:
    return ("0" if text[0] != "0" else "1") + text[1:]


async def test_a_media_link_redirects_to_the_object_and_tampering_is_refused(api: Api) -> None:
    _, [scene_id] = await dataset_with_scenes(api, 1)
    async with api.client("viewer") as client, httpx.AsyncClient() as plain:
        link = (await client.get(f"/scenes/{scene_id}")).json()["original_url"]
        assert link.startswith(f"{api.url}/media/scenes/{scene_id}.jpg?exp=")
        # No credentials needed: the link is them. It redirects to a presigned S3 URL.
        redirect = await plain.get(link)
        assert redirect.status_code == 302
        assert "max-age=" in redirect.headers["cache-control"]
        assert int(redirect.headers["cache-control"].split("max-age=")[1]) < 600
        presigned = redirect.headers["location"]
        assert presigned.startswith(api.settings.s3_endpoint_url)
        assert (await plain.get(presigned)).content == PNG
        # The redirect for the same object reuses the signature while it has life left.
        assert (await plain.get(link)).headers["location"] == presigned

        sig = parse_qs(urlsplit(link).query)["sig"][0]
        tampered = await plain.get(_with_query(link, sig=_flip(sig)))
        assert tampered.status_code == 403
        assert "signature" in tampered.json()["detail"]
        exp = int(parse_qs(urlsplit(link).query)["exp"][0])
        later = await plain.get(_with_query(link, exp=str(exp + 3600)))
        assert later.status_code == 403
        other = await plain.get(link.replace(scene_id, "someone-else"))
        assert other.status_code == 403
        missing = await plain.get(link.split("?")[0])
        assert missing.status_code == 400

        # The bucket refuses a presigned URL whose signature was changed on the way.
        s3_sig = parse_qs(urlsplit(presigned).query)["X-Amz-Signature"][0]
        bad = await plain.get(_with_query(presigned, **{"X-Amz-Signature": _flip(s3_sig)}))
        assert bad.status_code == 403

        # A link written in the past (same key, same secret) has expired: refused.
        past = datetime.now(UTC) - timedelta(hours=2)
        old = MediaLinks(
            media_key(api.settings.jwt_secret), 600, clock=lambda: past.timestamp()
        ).linker(api.url)(f"scenes/{scene_id}.jpg")
        assert old is not None
        expired = await plain.get(old)
        assert expired.status_code == 403
        assert "expired" in expired.json()["detail"]


async def test_a_kept_scene_document_shows_a_correction_at_once(
    redis: Redis, db_settings: Settings
) -> None:
    events = synthetic_log(5, 3, objects=2, reviews=False, rerun=False, failure_rate=0)
    await project(redis, db_settings, await publish(redis, db_settings, events))
    reader = SceneReader(max_scenes=10, ttl_s=3600)
    conn = await pg.connect(db_settings)
    # The read layer sees the organisation its transaction names (the API's OrgScope);
    # on this session connection, naming it for the session does the same.
    await conn.execute("SELECT set_config('modomo.org', 'default', false)")
    try:
        scene_id = await conn.fetchval("SELECT scene_id FROM scenes WHERE object_count = 2")
        first = await reader.scene(conn, scene_id)
        assert first is not None
        assert len(first.objects) == 2
        again = await reader.scene(conn, scene_id)
        assert again is not None
        assert again is not first  # a fresh Struct each time: callers fill in URLs
        assert msgspec.json.encode(again) == msgspec.json.encode(first)
        obj = first.objects[0]
        from modomo.domain.events import ObjectCorrected

        fix = ObjectCorrected(
            object_id=obj.object_id, scene_id=scene_id, category="lamp", corrected_by="rita"
        )
        await project(redis, db_settings, await publish(redis, db_settings, [fix]))
        fixed = await reader.scene(conn, scene_id)
        assert fixed is not None
        [changed] = [o for o in fixed.objects if o.object_id == obj.object_id]
        assert (changed.category, changed.corrected_by) == ("lamp", "rita")
        assert await reader.scene(conn, "no-such-scene") is None
        assert await SceneReader(max_scenes=0).scene(conn, scene_id) == fixed
    finally:
        await conn.close()


_SET_MS = "UPDATE job_scenes SET stage_ms = $1::text::jsonb WHERE job_id = $2"


async def test_job_timings_are_kept_per_job_version(redis: Redis, db_settings: Settings) -> None:
    events = synthetic_log(6, 4, reviews=False, rerun=False, failure_rate=0)
    await project(redis, db_settings, await publish(redis, db_settings, events))
    job_id = next(e.job_id for e in events if isinstance(e, JobCreated))
    now = [0.0]
    reader = JobReader(running_ttl_s=1.0, clock=lambda: now[0])
    conn = await pg.connect(db_settings)
    # The read layer sees the organisation its transaction names (the API's OrgScope);
    # on this session connection, naming it for the session does the same.
    await conn.execute("SELECT set_config('modomo.org', 'default', false)")
    try:
        first = await reader.job(conn, job_id)
        assert first is not None
        assert first.finished_at is not None
        assert first.stage_timings
        # Timings moved under an unchanged version: a finished job keeps what it had...
        await conn.execute(_SET_MS, '{"scene": 1e6}', job_id)
        now[0] = 100.0
        kept = await reader.job(conn, job_id)
        assert kept is not None
        assert kept.stage_timings == first.stage_timings
        # ...until the job's version moves, as every projected change does.
        await conn.execute("UPDATE jobs SET updated_at = now() WHERE job_id = $1", job_id)
        fresh = await reader.job(conn, job_id)
        assert fresh is not None
        assert [(t.stage, t.p50_ms) for t in fresh.stage_timings or []] == [("scene", 1e6)]
        # A running job's timings are read again after running_ttl_s, version or not.
        await conn.execute("UPDATE jobs SET finished_at = NULL WHERE job_id = $1", job_id)
        running = await reader.job(conn, job_id)
        await conn.execute(_SET_MS, '{"scene": 2}', job_id)
        assert await reader.job(conn, job_id) == running
        now[0] = 102.0
        later = await reader.job(conn, job_id)
        assert later is not None
        assert [(t.stage, t.p50_ms) for t in later.stage_timings or []] == [("scene", 2.0)]
        assert await reader.job(conn, "nope") is None
    finally:
        await conn.close()


# --- SSE -----------------------------------------------------------------------------


class Message(msgspec.Struct):
    id: str | None
    event: str | None
    comment: bool = False


def _messages(chunks: list[bytes]) -> list[Message]:
    out = []
    for frame in b"".join(chunks).split(b"\r\n\r\n"):
        if not frame:
            continue
        fields = dict(line.split(b": ", 1) for line in frame.split(b"\r\n") if b": " in line)
        out.append(
            Message(
                id=fields[b"id"].decode() if b"id" in fields else None,
                event=fields[b"event"].decode() if b"event" in fields else None,
                comment=frame.startswith(b":"),
            )
        )
    return out


async def _follow(hub: JobStreamHub, job_id: str, after: str = "0-0", stop: int = 0) -> list[bytes]:
    """Every chunk the client would be sent (until the stream ends, or ``stop`` chunks)."""
    info = await sse.stream_info(hub, job_id)
    assert info is not None
    chunks: list[bytes] = []
    stream = sse.follow(hub, job_id, after, info)
    async for chunk in stream:
        chunks.append(chunk)
        if stop and len(chunks) >= stop:
            break
    await stream.aclose()
    return chunks


def _job(n: int, job_id: str) -> list[EventBase]:
    events: list[EventBase] = [JobCreated(job_id=job_id, dataset_id="d", scene_ids=("s",))]
    events += [SceneStarted(job_id=job_id, scene_id=f"s{i}", attempt=1) for i in range(n)]
    return events


async def test_history_comes_in_pages_and_resumption_neither_skips_nor_repeats(
    redis: Redis, settings: Settings
) -> None:
    keys = Keys(settings.redis_prefix)
    log = EventLog(redis, keys)
    job_id = str(uuid.uuid4())
    await log.append(_job(sse.HISTORY_PAGE * 2 + 50, job_id))  # three pages of history
    hub = JobStreamHub(redis, keys, block_ms=200)
    chunks: list[bytes] = []

    async def follow() -> None:
        info = await sse.stream_info(hub, job_id)
        assert info is not None
        async for chunk in sse.follow(hub, job_id, "0-0", info):
            chunks.append(chunk)

    task = asyncio.create_task(follow())
    await wait_for(lambda: _count(chunks, sse.HISTORY_PAGE * 2 + 51), what="the whole history")
    assert len(chunks) == 3  # one write per page
    await log.append([SceneStarted(job_id=job_id, scene_id="x", attempt=2)])
    await log.append([JobCompleted(job_id=job_id, status="succeeded", ok=1)])
    await asyncio.wait_for(task, 10)  # the stream ended after job_done
    messages = _messages(chunks)
    ids = [m.id for m in messages]
    assert len(ids) == len(set(ids)) == sse.HISTORY_PAGE * 2 + 53
    assert messages[-1].event == "job_done"
    entries = await redis.xrange(keys.job_events(job_id))
    assert ids == [e[0].decode() for e in entries]

    # Resuming from the middle gives exactly the rest; resuming after the end, nothing.
    middle = ids[137]
    rest = _messages(await _follow(hub, job_id, middle))
    assert [m.id for m in rest] == ids[138:]
    assert await _follow(hub, job_id, ids[-1]) == []
    await hub.close()


async def _count(chunks: list[bytes], n: int) -> bool:
    return len(_messages(chunks)) >= n


async def test_one_reader_serves_many_jobs_and_trimmed_history_is_announced(
    redis: Redis, settings: Settings
) -> None:
    keys = Keys(settings.redis_prefix)
    log = EventLog(redis, keys)
    # Four connections for forty jobs: a reader (or a held connection) per job would starve.
    small = connect(msgspec.structs.replace(settings, redis_max_connections=4))
    hub = JobStreamHub(small, keys)
    jobs = [str(uuid.uuid4()) for _ in range(40)]
    for job_id in jobs:
        await log.append(_job(1, job_id))
    received: dict[str, list[bytes]] = {j: [] for j in jobs}

    async def follow(job_id: str) -> None:
        info = await sse.stream_info(hub, job_id)
        assert info is not None
        async for chunk in sse.follow(hub, job_id, "0-0", info):
            received[job_id].append(chunk)

    tasks = [asyncio.create_task(follow(j)) for j in jobs]
    await wait_for(lambda: _all(received, 2), what="every job's history")
    assert hub.readers == 1
    assert hub.watched == len(jobs)
    # Live entries of every job arrive through the one reader, which was woken for each
    # newly watched job: not one blocked read per job.
    await log.append([SceneStarted(job_id=j, scene_id="live", attempt=1) for j in jobs])
    await wait_for(lambda: _all(received, 3), within=10, what="live entries of every job")
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert hub.subscribers == 0

    # Entries after the client's position were trimmed: the stream says so, then goes on.
    job_id = jobs[0]
    before = (await redis.xrange(keys.job_events(job_id)))[0][0].decode()
    await log.append([SceneStarted(job_id=job_id, scene_id=f"t{i}", attempt=1) for i in range(5)])
    kept = (await redis.xrange(keys.job_events(job_id)))[-2][0].decode()
    await redis.xtrim(keys.job_events(job_id), minid=kept, approximate=False)
    messages = _messages(await _follow(hub, job_id, before, stop=2))
    assert messages[0].event == "gap"
    assert messages[0].id is None  # it moves no client's Last-Event-ID
    assert messages[1].id == kept
    await hub.close()
    await small.aclose()


async def _all(received: dict[str, list[bytes]], n: int) -> bool:
    return all(len(_messages(c)) >= n for c in received.values())


async def test_keep_alives_when_idle_and_a_client_too_far_behind_is_cut_off(
    redis: Redis, settings: Settings
) -> None:
    keys = Keys(settings.redis_prefix)
    log = EventLog(redis, keys)
    job_id = str(uuid.uuid4())
    await log.append(_job(0, job_id))
    hub = JobStreamHub(redis, keys, block_ms=200, keep_alive_s=0.2, max_behind=300)
    chunks = await _follow(hub, job_id, stop=3)
    assert _messages(chunks)[0].event == "job_created"
    assert chunks[1:] == [b": keep-alive\r\n\r\n"] * 2

    info = await sse.stream_info(hub, job_id)
    assert info is not None
    assert info.last is not None
    async with hub.subscribe(job_id, info.last.id) as slow:
        await log.append(_job(600, job_id)[1:])
        await wait_for(lambda: _beyond(hub, job_id, 600), what="the reader to take 600 entries")
        with pytest.raises(Overflowed):
            await slow.next()
    await hub.close()


async def _beyond(hub: JobStreamHub, job_id: str, n: int) -> bool:
    feed = hub._feeds.get(job_id)
    return feed is not None and feed.end >= n


# --- processes --------------------------------------------------------------------------


async def test_the_api_serves_from_several_processes(db_settings: Settings) -> None:
    settings = msgspec.structs.replace(db_settings, api_port=free_port(), jwt_secret="p" * 32)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "modomo.cli",
        "api",
        "--workers",
        "2",
        env=settings_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{settings.api_port}"

        async def healthy() -> bool:
            try:
                async with httpx.AsyncClient() as client:
                    return (await client.get(f"{base}/health")).status_code == 200
            except httpx.HTTPError:
                return False

        await wait_for(healthy, within=60, what="the API's workers")
        workers = psutil.Process(proc.pid).children(recursive=True)
        assert len([w for w in workers if "python" in w.name()]) >= 2
        async with httpx.AsyncClient(base_url=base) as client:
            answers = [(await client.get("/health")).json()["ok"] for _ in range(20)]
        assert all(answers)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
