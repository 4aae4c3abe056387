"""A projector never stalls on one event: for every event type and every text field in it,
an event carrying text PostgreSQL cannot store (NUL) or text that is not Unicode at all (a
lone surrogate escape) is parked by exactly the projectors that could not apply it, every
other event lands, and a replay parks the same set.

The poisoned variants are built programmatically from the event union: each str value
reachable in a real instance of each type (fields, the first element of a tuple, the
first key and value of a dict) is poisoned in turn, each variant placed just before that
instance in the log (so it is the first of its kind, not a duplicate a projector would
ignore). A variant whose poisoned field no table stores applies like its clean twin.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
import pytest
from prometheus_client import REGISTRY
from redis.asyncio import Redis

from modomo.domain.events import (
    EVENT_TYPES,
    ApiKeyCreated,
    ApiKeyRevoked,
    EvaluationRecorded,
    EventBase,
    ExportCompleted,
    ExportFailed,
    ExportRequested,
    ExportStarted,
    JobCompleted,
    JobCreated,
    OrgQuotaSet,
    SceneDeadLettered,
    SceneRequeued,
    WorkerWarming,
)
from modomo.projections.migrate import migrate
from modomo.projections.registry import PROJECTORS, READ_MODEL_PROJECTORS, select
from modomo.projections.replay import replay
from modomo.settings import Settings
from modomo.streams.keys import EVENT_FIELD, Keys
from modomo.synthetic.log import synthetic_log
from tests.integration.projection_support import dump, project

pytestmark = pytest.mark.integration

Path = tuple[Any, ...]
"""Where a str sits in an event's builtins form: field names, tuple indexes, and
``("key", k)`` for a dict key itself."""

NUMBERS = {"job_created": ("resize_max_px",), "scene_start": ("attempt",)}
"""Integer fields stored in ``integer`` columns, poisoned with a value out of range."""

MARK = "\ue000poison\ue000"
"""Stands in for a lone surrogate, which msgspec will not encode; swapped in the bytes."""


def text_slots(value: Any, path: Path = ()) -> Iterator[Path]:
    """Every str reachable in ``value`` (a decoded event), by its path."""
    if isinstance(value, str):
        yield path
    elif isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            yield from text_slots(getattr(value, name), (*path, name))
    elif isinstance(value, tuple | list) and value:
        yield from text_slots(value[0], (*path, 0))
    elif isinstance(value, dict) and value:
        key = next(iter(value))
        yield (*path, ("key", key))
        yield from text_slots(value[key], (*path, key))


def dotted(path: Path) -> str:
    """``path`` as :func:`modomo.domain.text.find_problem` names it (``scenes[0].scene_id``)."""
    out = ""
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        elif isinstance(step, tuple):
            out += f".{step[1]} (key)"
        else:
            out += f".{step}"
    return out.lstrip(".")


def poisoned(event: EventBase, path: Path, bad: str) -> bytes:
    """``event`` encoded as the log holds it, with ``bad`` appended to the str at ``path``."""
    data = msgspec.json.decode(msgspec.json.encode(event))
    holder = data
    for step in path[:-1]:
        holder = holder[step]
    last = path[-1]
    if isinstance(last, tuple):  # a dict key
        _, key = last
        holder[key + bad] = holder.pop(key)
    else:
        holder[last] = holder[last] + bad
    raw = msgspec.json.encode(data)
    return raw.replace(msgspec.json.encode(MARK)[1:-1], b"\\ud800")


@dataclass(frozen=True)
class Entry:
    raw: bytes
    clean: bytes
    """What the entry would be without its poison (the same bytes for clean entries)."""
    poison: str = ""
    """``type.path`` of the poisoned field, or empty."""


def build_log() -> list[Entry]:
    events: list[EventBase] = synthetic_log(5, 12, failure_rate=0.5)
    job = next(e for e in events if isinstance(e, JobCreated))
    dead = next(e for e in events if isinstance(e, SceneDeadLettered))
    # The types the synthetic log never writes.
    export = {"export_id": "x1"}
    events += [
        WorkerWarming(job_id=job.job_id, worker="w1"),
        SceneRequeued(job_id=dead.job_id, scene_id=dead.scene_id, prior_attempts=3),
        JobCompleted(job_id=job.job_id, status="partial", ok=1, partial=1, failed=1),
        ExportRequested(**export, dataset_id=job.dataset_id, format="coco", requested_by="r"),
        ExportStarted(**export, position="1-0", worker="w"),
        ExportFailed(**export, error="the bucket went away", will_retry=True),
        ExportCompleted(**export, position="1-0", key="exports/x1.zip", size_bytes=9, sha256="ab"),
        EvaluationRecorded(
            evaluation_id="e1",
            golden="golden",
            golden_sha256="ab",
            job_id=job.job_id,
            models={"clip": "tiny"},
            metrics={"map": 0.5},
            per_class={"map": {"sofa": 0.5}},
            regressions=("map",),
            notes=("a note",),
        ),
        OrgQuotaSet(org="acme", scenes_per_day=10, set_by="admin"),
        ApiKeyCreated(org="acme", key_id="k1", role="viewer", name="ci", created_by="admin"),
        ApiKeyRevoked(org="acme", key_id="k1", revoked_by="admin"),
    ]
    first_of: dict[str, int] = {}
    for index, event in enumerate(events):
        first_of.setdefault(event.__struct_config__.tag, index)  # type: ignore[arg-type]
    assert set(first_of) == set(EVENT_TYPES), set(EVENT_TYPES) - set(first_of)
    entries: list[Entry] = []
    for index, event in enumerate(events):
        raw = msgspec.json.encode(event)
        tag = str(event.__struct_config__.tag)
        if first_of[tag] == index:
            slots = [p for p in text_slots(event) if p != ("type",)]
            assert slots, tag
            for slot in slots:
                name = dotted(slot)
                entries.append(Entry(poisoned(event, slot, "\x00"), raw, f"{tag}.{name}+NUL"))
            # Any lone surrogate makes the whole entry undecodable: one per type is enough.
            entries.append(Entry(poisoned(event, slots[-1], MARK), raw, f"{tag}+surrogate"))
            # A number over its column's range: found by PostgreSQL (or the client) only
            # when the batch is written, so isolated by bisection.
            for field in NUMBERS.get(tag, ()):
                big = msgspec.structs.replace(event, **{field: 2**40})  # type: ignore[type-var]
                entries.append(Entry(msgspec.json.encode(big), raw, f"{tag}.{field}+range"))
        entries.append(Entry(raw, raw))
    return entries


async def publish_raw(redis: Redis, settings: Settings, payloads: list[bytes]) -> list[str]:
    stream = Keys(settings.redis_prefix).events
    ids = []
    for payload in payloads:
        entry_id = await redis.xadd(stream, {EVENT_FIELD: payload})
        ids.append(entry_id.decode() if isinstance(entry_id, bytes) else entry_id)
    return ids


async def parked_rows(settings: Settings) -> set[tuple[str, str, str]]:
    conn = await asyncpg.connect(settings.database_url)
    try:
        rows = await conn.fetch(
            f'SELECT projector, entry_id, reason FROM "{settings.db_schema}".parked_events'
        )
    finally:
        await conn.close()
    return {(r["projector"], r["entry_id"], r["reason"]) for r in rows}


def _parked_total(name: str) -> float:
    value = REGISTRY.get_sample_value("modomo_projector_parked_total", {"projector": name})
    return value or 0.0


async def test_every_text_field_of_every_event_type_parks_only_its_event(
    redis: Redis, db_settings: Settings
) -> None:
    settings = msgspec.structs.replace(db_settings, projector_batch=25)
    log = build_log()
    poisons = [e for e in log if e.poison]
    assert len(poisons) >= 80  # every type, every text field
    before = {name: _parked_total(name) for name in PROJECTORS}
    ids = await publish_raw(redis, settings, [e.raw for e in log])
    await project(redis, settings, ids[-1], within=180)

    parked = await parked_rows(settings)
    by_projector: dict[str, set[str]] = {name: set() for name in READ_MODEL_PROJECTORS}
    for projector, entry_id, _ in parked:
        by_projector[projector].add(entry_id)
    reason = {(p, i): r for p, i, r in parked}
    # Each poisoned entry is parked by exactly the projectors that read its type (a lone
    # surrogate makes it unreadable even to those that look only at the type), saying
    # which field holds what; nothing else is parked.
    expected: set[tuple[str, str]] = set()
    for index, entry in enumerate(log):
        if not entry.poison:
            continue
        tag, _, field = entry.poison.partition("+")[0].partition(".")
        for name in READ_MODEL_PROJECTORS:
            interest = PROJECTORS[name].interest
            reads = interest is None or tag in interest
            if reads or entry.poison.endswith("+surrogate"):
                expected.add((name, ids[index]))
            if entry.poison.endswith("+NUL") and reads:
                # Named by the text check, or by the decoder for a Literal field.
                said = reason[(name, ids[index])]
                if field.endswith(" (key)"):  # the bad key itself is shown escaped
                    parent = field.rsplit(".", 1)[0]
                    assert said.startswith(parent), said
                    assert "(key) contains a NUL" in said, said
                    continue
                assert said.startswith(f"{field} contains a NUL character") or (
                    "Invalid enum value" in said and f"$.{field}" in said
                ), (entry.poison, name, said)
            elif entry.poison.endswith("+range"):
                expected.discard((name, ids[index]))
    numeric = {ids[i]: e.poison for i, e in enumerate(log) if e.poison.endswith("+range")}
    for entry_id, field in numeric.items():
        refused = [r for (p, i), r in reason.items() if i == entry_id]
        assert len(refused) == 1, (field, refused)
        assert "OverflowError" in refused[0] or "SQLSTATE 22" in refused[0], refused
        expected.add(next((p, i) for (p, i) in reason if i == entry_id))
    assert {(p, i) for p, i, _ in parked} == expected
    for name, entry_ids in by_projector.items():
        assert _parked_total(name) - before[name] == len(entry_ids), name

    # The archive kept every entry, poisoned or not, byte for byte.
    tables = await dump(settings)
    conn = await asyncpg.connect(settings.database_url)
    try:
        archived = await conn.fetchval(f'SELECT count(*) FROM "{settings.db_log_schema}".event_log')
    finally:
        await conn.close()
    assert archived == len(log)

    # Every other event landed: each projector's tables equal a clean run of the log
    # without the entries it parked (and with the rest unpoisoned).
    for name in READ_MODEL_PROJECTORS:
        ref = msgspec.structs.replace(
            settings,
            redis_prefix=f"{settings.redis_prefix}ref{name}",
            db_schema=f"{settings.db_schema}_ref{name}",
            db_log_schema=f"{settings.db_log_schema}_ref{name}",
        )
        admin = await asyncpg.connect(settings.database_url)
        await migrate(admin, ref.db_schema, ref.db_log_schema)
        await admin.close()
        kept = [e.clean for i, e in enumerate(log) if ids[i] not in by_projector[name]]
        ref_ids = await publish_raw(redis, ref, kept)
        await project(redis, ref, ref_ids[-1], names=[name])
        clean_run = await dump(ref, tables=PROJECTORS[name].tables)
        assert {t: tables[t] for t in PROJECTORS[name].tables} == clean_run, name
        assert await parked_rows(ref) == set(), name

    # A replay from the archive parks the very same entries for the same reasons.
    result = await replay(settings, select(list(READ_MODEL_PROJECTORS)))
    assert result.parked == len(parked)
    assert await parked_rows(settings) == parked
    assert await dump(settings) == tables
