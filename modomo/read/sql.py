"""Small pieces every read query uses: what a connection is, parameters, JSON selects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, TypeVar

V = TypeVar("V")


class Conn(Protocol):
    """An asyncpg connection, pool or pooled connection: whatever can run a query."""

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...

    async def fetchrow(self, query: str, *args: Any) -> Any: ...

    async def fetchval(self, query: str, *args: Any) -> Any: ...


ORG = "current_setting('modomo.org', true)"
"""The caller's organisation, as its transaction names it (:mod:`modomo.api.scope` sets it
with ``set_config('modomo.org', org, true)``). Unset, it is NULL or '': no row matches."""


def in_org(alias: str) -> str:
    """The query layer's own organisation filter on ``alias``'s rows.

    The first of two walls: the read models' row-level security policies (migration 0060)
    compare the same column to the same setting, so a query that forgets this filter still
    returns no other organisation's rows to the API's database role.
    """
    return f"{alias}.org_id = {ORG}"


class Params:
    """Numbered query parameters built up alongside a WHERE clause."""

    def __init__(self, *initial: Any) -> None:
        self.values: list[Any] = list(initial)

    def __call__(self, value: Any) -> str:
        """Add ``value``; its placeholder (``$n``) to put in the SQL."""
        self.values.append(value)
        return f"${len(self.values)}"


def select_list(columns: Mapping[str, str]) -> str:
    """``expr AS name, ...`` for a mapping of output name to SQL expression."""
    return ", ".join(f"{expr} AS {name}" for name, expr in columns.items())


def columns_of(fields: tuple[str, ...], alias: str, **renamed: str) -> dict[str, str]:
    """Output name -> SQL expression for a shape's ``fields``: ``alias.field`` unless the
    field is in ``renamed`` (then that expression). Adding a field to a shape whose column
    has the same name is all it takes to serve it."""
    return {f: renamed.get(f, f"{alias}.{f}") for f in fields}


def json_array(select: str, order_by: str) -> str:
    """A scalar subquery: the rows of ``select`` (aliased ``x``) as a JSON array, ``[]``
    when there are none."""
    return f"(SELECT coalesce(json_agg(x ORDER BY {order_by}), '[]') FROM ({select}) x)"


def remember(store: dict[str, V], key: str, value: V, limit: int) -> None:
    """Put ``value`` in a cache of at most ``limit`` entries, dropping the older half
    (by insertion) when it is full: cheaper than an LRU, and enough for a read cache."""
    if key not in store and len(store) >= limit:
        for old in list(store)[: max(1, limit // 2)]:
            del store[old]
    store[key] = value
