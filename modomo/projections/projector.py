"""What a projector is, and applying one batch of log entries with its checkpoint.

A projector owns a family of read-model tables. It reads ``<prefix>:events`` in log order
from its own checkpoint; each batch is applied and the checkpoint advanced in one
transaction, so a batch is either wholly in the tables or not at all, and a re-read entry
changes nothing. An entry it cannot apply is parked (``parked_events``) with the reason and
the projector goes on: one the projector itself refuses (unreadable, refers to nothing),
and one PostgreSQL refuses because of its data (see :mod:`modomo.projections.parking`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import asyncpg
import msgspec

from modomo.domain.codec import CODEC, EventDecodeError
from modomo.domain.events import Event
from modomo.domain.text import find_problem

SWAP_LOCK = 0x6D6F646F6D6F_01
"""Advisory lock: batches take it shared, a replay's table swap exclusive."""


RawEntry = tuple[str, bytes]
"""A log entry as read: its id and its payload."""


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One entry of the log: its id, raw payload and, when readable, the decoded event."""

    entry_id: str
    raw: bytes
    event: Event | None
    error: str | None = None
    skipped: bool = False
    """Of a type the projector ignores, so never decoded."""
    tag: str = ""
    """The event's type when it decoded but cannot be applied (``error`` says why)."""

    @property
    def ms_seq(self) -> tuple[int, int]:
        return parse_id(self.entry_id)


@dataclass(frozen=True, slots=True)
class Parked:
    entry_id: str
    event_type: str
    reason: str
    payload: bytes


def parse_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class _Head(msgspec.Struct):
    type: str = ""


_head = msgspec.json.Decoder(_Head)


def decode_entry(entry_id: str, raw: bytes, interest: frozenset[str] | None = None) -> LogEntry:
    """The entry with its event decoded, unless its type is outside ``interest``.

    Reading only the ``type`` first costs a fraction of a full decode, which matters for
    projectors that care about one event type in twenty.
    """
    if interest is not None:
        try:
            tag = _head.decode(raw).type
        except msgspec.DecodeError as exc:
            return LogEntry(entry_id, raw, None, f"not a JSON object: {exc}")
        if tag not in interest:
            return LogEntry(entry_id, raw, None, skipped=True)
    try:
        event = CODEC.decode(raw)
    except EventDecodeError as exc:
        return LogEntry(entry_id, raw, None, str(exc))
    # NUL can only be in the text as the JSON escape; the byte search spares the walk for
    # every other entry. (msgspec refuses lone surrogates while decoding, above.)
    if _NUL_ESCAPE in raw and (found := find_problem(event)) is not None:
        tag = str(type(event).__struct_config__.tag)
        return LogEntry(entry_id, raw, None, f"{found[0]} {found[1]}", tag=tag)
    return LogEntry(entry_id, raw, event)


_NUL_ESCAPE = b"\\u0000"


def event_type_of(entry: LogEntry) -> str:
    if entry.event is not None:
        return str(type(entry.event).__struct_config__.tag)
    return entry.tag or "unreadable"


class Projector:
    """Base of every projector: a name, the tables it owns, and ``apply``."""

    name: ClassVar[str]
    tables: ClassVar[tuple[str, ...]]
    """Read-model tables this projector alone writes (a replay swaps exactly these)."""
    checkpoint_table: ClassVar[str] = "projector_checkpoints"
    parks: ClassVar[bool] = True
    """Whether unreadable entries are parked (the archive keeps them instead)."""
    interest: ClassVar[frozenset[str] | None] = None
    """Event types this projector reads; None: all (and unknown types get parked)."""

    def decode(self, raw: Sequence[RawEntry]) -> list[LogEntry]:
        return [decode_entry(entry_id, payload, self.interest) for entry_id, payload in raw]

    async def prepare(self, conn: asyncpg.Connection[Any]) -> None:
        """Once per connection, inside a transaction: look up what ``apply`` needs. Nothing
        may be kept in the session (a transaction-mode pooler may give every transaction
        another server connection)."""

    def reset(self) -> None:
        """Forget anything remembered between batches (the tables changed under us)."""

    async def apply(
        self, conn: asyncpg.Connection[Any], entries: Sequence[LogEntry]
    ) -> list[Parked]:
        """Fold ``entries`` into the tables inside the caller's transaction.

        Raises what PostgreSQL raises; the caller isolates an event whose data it refuses.
        Anything remembered between batches must be dropped by :meth:`reset`, which the
        caller invokes whenever an ``apply`` is rolled back.
        """
        raise TypeError(f"{type(self).__name__} must define apply()")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a projector stands: the last entry applied, how many entries it has read since
    the log began, and the generation of its tables (bumped when anything but the active
    instance's batches changed them)."""

    position: str = "0-0"
    seen: int = 0
    generation: int = 0


async def load_checkpoint(
    conn: asyncpg.Connection[Any], projector: Projector, lock: bool = False
) -> Checkpoint:
    row = await conn.fetchrow(
        f"SELECT position, events_seen, generation FROM {projector.checkpoint_table} "
        "WHERE name = $1" + (" FOR UPDATE" if lock else ""),
        projector.name,
    )
    return (
        Checkpoint(row["position"], row["events_seen"], row["generation"]) if row else Checkpoint()
    )


async def read_checkpoint(
    conn: asyncpg.Connection[Any], projector: Projector, lock: bool = False
) -> tuple[str, int]:
    """(position, events seen) of ``projector``."""
    found = await load_checkpoint(conn, projector, lock)
    return found.position, found.seen


async def save_checkpoint(
    conn: asyncpg.Connection[Any], projector: Projector, checkpoint: Checkpoint
) -> None:
    await conn.execute(
        f"INSERT INTO {projector.checkpoint_table} (name, position, events_seen, generation,"
        " updated_at) VALUES ($1, $2, $3, $4, now()) ON CONFLICT (name) DO UPDATE SET"
        " position = EXCLUDED.position, events_seen = EXCLUDED.events_seen,"
        " generation = EXCLUDED.generation, updated_at = now()",
        projector.name,
        checkpoint.position,
        checkpoint.seen,
        checkpoint.generation,
    )
