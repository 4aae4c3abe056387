"""The projectors' connections to PostgreSQL: those of :mod:`modomo.pg`, under this name."""

from __future__ import annotations

from modomo.pg import connect, pool, quote, search_path, transaction

__all__ = ["connect", "pool", "quote", "search_path", "transaction"]
