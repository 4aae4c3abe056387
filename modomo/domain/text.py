"""Text that PostgreSQL can store, checked or made so. Pure: no I/O.

PostgreSQL's ``text`` and ``jsonb`` cannot hold the NUL character (U+0000), and a lone
UTF-16 surrogate (U+D800..U+DFFF, which Python strings can carry) has no UTF-8 encoding at
all, so it fails before it even reaches the server. Everything else Unicode is fine in a
UTF-8 database. Such text must never enter the event log: a projector could not store it.

- :func:`problem` says what is wrong with one string (None when it is storable).
- :func:`find_problem` walks a decoded value (Structs, dicts with their keys, lists,
  tuples) and names the first offending field by its path, e.g. ``attrs.colour``.
- :func:`sanitise` makes text a process produced storable (NUL dropped, each lone surrogate
  replaced by U+FFFD), for text nobody typed, such as a model's caption.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

_BAD = re.compile("[\x00\ud800-\udfff]")


def problem(text: str) -> str | None:
    """Why PostgreSQL cannot store ``text``, or None when it can."""
    found = _BAD.search(text)
    if found is None:
        return None
    if found.group() == "\x00":
        return f"contains a NUL character (at offset {found.start()})"
    return f"contains a lone surrogate U+{ord(found.group()):04X} (at offset {found.start()})"


def sanitise(text: str) -> str:
    """``text`` with NUL removed and each lone surrogate replaced by U+FFFD."""
    if _BAD.search(text) is None:
        return text
    return _BAD.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", text)


def find_problem(value: Any, path: str = "") -> tuple[str, str] | None:
    """The first string inside ``value`` PostgreSQL cannot store, as ``(path, reason)``.

    ``path`` joins field names and dict keys with dots and list positions in brackets
    (``files[2].filename``); a bad dict key is named by its own path plus `` (key)``.
    """
    if isinstance(value, str):
        reason = problem(value)
        return (path or "value", reason) if reason is not None else None
    if isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            found = find_problem(getattr(value, name), _join(path, name))
            if found is not None:
                return found
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            here = _join(path, str(key) if problem(str(key)) is None else repr(key))
            if isinstance(key, str) and (reason := problem(key)) is not None:
                return f"{here} (key)", reason
            found = find_problem(item, here)
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            found = find_problem(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
