"""Stream entry ids and XREAD replies: the one parser and the one unwrapper of them.

Every reader of a stream (projectors, the queue, the API's SSE hub) orders entries by
their ids and unwraps XREAD replies; both live here so they agree everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

ENTRY_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
"""A full entry id as Redis writes it (``<ms>-<seq>``)."""

RawEntries = list[tuple[bytes, list[bytes]]]
"""Entries as hiredis parses them: ``(id, [field, value, field, value, ...])``."""


def parse_id(entry_id: str | bytes) -> tuple[int, int]:
    """``"1700000000000-3"`` as ``(1700000000000, 3)``, comparable in stream order.

    A bare millisecond part (``"1700000000000"``) means sequence 0, as in Redis ranges.
    Raises ValueError for anything else.
    """
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def format_id(ms: int, seq: int) -> str:
    return f"{ms}-{seq}"


def next_id(entry_id: str) -> str:
    """The smallest id after ``entry_id`` (an exclusive range start that needs no ``(``)."""
    ms, seq = parse_id(entry_id)
    return format_id(ms, seq + 1)


def streams_of(reply: Any) -> Iterator[tuple[bytes, RawEntries]]:
    """``(stream key, entries)`` of each stream in an XREAD/XREADGROUP reply.

    RESP3 answers a map of stream -> entries, RESP2 a list of ``[stream, entries]``; an
    empty reply (a BLOCK that timed out) is ``None``.
    """
    if not reply:
        return
    if isinstance(reply, dict):
        yield from reply.items()
    else:
        yield from ((key, entries) for key, entries in reply)


def entries_of(reply: Any) -> RawEntries:
    """The entries of a reply to a read of one stream (empty when nothing came)."""
    for _, entries in streams_of(reply):
        return entries
    return []


def field_of(flat: list[bytes], field: bytes) -> bytes | None:
    """The value of ``field`` in an entry's flat ``[field, value, ...]`` list."""
    if len(flat) >= 2 and flat[0] == field:
        return flat[1]  # the usual case: entries Modomo writes have one field
    for i in range(2, len(flat) - 1, 2):
        if flat[i] == field:
            return flat[i + 1]
    return None
