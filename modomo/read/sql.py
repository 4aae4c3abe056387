"""Small pieces every read query uses: what a connection is, parameters, JSON selects."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class Conn(Protocol):
    """An asyncpg connection, pool or pooled connection: whatever can run a query."""

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...

    async def fetchrow(self, query: str, *args: Any) -> Any: ...

    async def fetchval(self, query: str, *args: Any) -> Any: ...


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
