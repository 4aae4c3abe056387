"""Property: an export at a log position is the same bytes however the log is read.

For generated logs (retries, partial and dead scenes, corrections, reviews, a rerun) and a
random position: export while the archive lags and Redis holds the rest; archive every entry
and trim Redis past the position; replay the read models to the position; export again; and
fold the events up to the position in memory and build the export from that. The three
archives are byte-identical, and the replayed read models hold exactly the scenes and
objects the export's snapshot holds.
"""

from __future__ import annotations

import io
import itertools
from typing import Any

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from redis.asyncio import Redis

from modomo.domain.events import EventBase, MasksSegmented, ScenesRegistered
from modomo.domain.snapshot import fold_dataset
from modomo.export.archive import FORMATS, build_export
from modomo.export.run import export_dataset
from modomo.projections import db
from modomo.projections.archive import ArchiveProjector
from modomo.projections.batch import apply_batch
from modomo.projections.projector import Checkpoint, decode_entry
from modomo.projections.registry import select
from modomo.projections.replay import replay
from modomo.settings import Settings
from modomo.storage import Storage
from modomo.streams.keys import EVENT_FIELD, Keys
from modomo.streams.log import EventLog
from modomo.synthetic.log import synthetic_log
from tests.integration.products_support import bucket, png, with_bucket

pytestmark = pytest.mark.integration

_examples = itertools.count()


def _jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (24, 32, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=80)
    return out.getvalue()


async def _upload(storage: Storage, events: list[EventBase]) -> None:
    """Originals and masks for every key the generated log names."""
    for event in events:
        if isinstance(event, ScenesRegistered):
            for scene in event.scenes:
                await storage.put(scene.r2_key_original, _jpeg(len(scene.scene_id)), "image/jpeg")
        elif isinstance(event, MasksSegmented):
            for mask in event.masks:
                bits = np.random.default_rng(len(mask.object_id)).random((24, 32)) > 0.6
                await storage.put(mask.mask_key, png(bits), "image/png")


async def _archive(settings: Settings, redis: Redis, keys: Keys, upto: int) -> None:
    """Let the archive projector copy the first ``upto`` entries (0: none)."""
    if not upto:
        return
    rows: Any = await redis.xrange(keys.events, count=upto)
    entries = [decode_entry(i.decode(), f[EVENT_FIELD], frozenset()) for i, f in rows]
    conn = await db.connect(settings)
    try:
        archive = ArchiveProjector()
        position = await conn.fetchval(
            "SELECT position FROM log_checkpoints WHERE name = 'archive'"
        )
        fresh = [e for e in entries if position is None or e.ms_seq > _parse(position)]
        if fresh:
            expected = Checkpoint(position or "0-0")
            assert (await apply_batch(conn, archive, fresh, expected)).applied
    finally:
        await conn.close()


def _parse(entry_id: str) -> tuple[int, int]:
    ms, seq = entry_id.split("-")
    return int(ms), int(seq)


async def _export(settings: Settings, redis: Redis, storage: Storage, **kw: Any) -> bytes:
    conn = await db.connect(settings)
    try:
        _, built = await export_dataset(
            conn, redis, Keys(settings.redis_prefix).events, storage, **kw
        )
    finally:
        await conn.close()
    return built.data


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 10_000),
    scenes=st.integers(1, 4),
    cut=st.floats(0.0, 1.0),
    lag=st.floats(0.0, 1.0),
    fmt=st.sampled_from(FORMATS),
    reviewed_only=st.booleans(),
)
async def test_an_export_at_a_position_is_the_same_bytes_after_replay(
    db_settings: Settings,
    redis: Redis,
    s3_endpoint: str,
    seed: int,
    scenes: int,
    cut: float,
    lag: float,
    fmt: Any,
    reviewed_only: bool,
) -> None:
    example = next(_examples)
    base = with_bucket(db_settings, s3_endpoint)
    config = msgspec.structs.replace(base, redis_prefix=f"{base.redis_prefix}x{example}")
    keys = Keys(config.redis_prefix)
    conn = await db.connect(config)
    await conn.execute("TRUNCATE event_log; DELETE FROM log_checkpoints")
    await conn.close()
    events = synthetic_log(seed, scenes)
    dataset_id = events[0].dataset_id  # type: ignore[attr-defined]
    async with bucket(config) as storage:
        await _upload(storage, events)
        ids = (await EventLog(redis, keys).append(events)).log_ids
        k = round(cut * (len(ids) - 1))
        position = ids[k]
        await _archive(config, redis, keys, round(lag * len(ids)))
        args = {"dataset_id": dataset_id, "fmt": fmt, "reviewed_only": reviewed_only}
        first = await _export(config, redis, storage, as_of=position, **args)

        await _archive(config, redis, keys, len(ids))
        await redis.xtrim(keys.events, minid=ids[min(k + 1, len(ids) - 1)], approximate=False)
        assert await redis.xlen(keys.events) < len(ids) or len(ids) == 1
        again = await _export(config, redis, storage, as_of=position, **args)
        assert again == first

        snapshot = fold_dataset(dataset_id, events[: k + 1])
        built = await build_export(
            snapshot, fmt=fmt, position=position, reviewed_only=reviewed_only, blobs=storage
        )
        assert built.data == first

    asof = f"{config.redis_prefix}_asof"  # under the test's prefix: its fixture drops it
    result = await replay(config, select(["scenes"]), until_id=position, into=asof)
    assert result.last_position == position
    shadow = await db.connect(config, schema=asof)
    try:
        scene_ids = {r[0] for r in await shadow.fetch("SELECT scene_id FROM scenes")}
        object_ids = {r[0] for r in await shadow.fetch("SELECT object_id FROM objects")}
    finally:
        await shadow.close()
    assert scene_ids == set(snapshot.scenes)
    assert object_ids == {o for v in snapshot.scenes.values() for o in v.objects}
