"""PostgreSQL and pgbouncer a test may stop, kill and restart; they live in
:mod:`modomo.demo.pgservers` so ``bench/chaos.py`` uses the same ones."""

from modomo.demo.pgservers import Pgbouncer, PostgresCluster, available

__all__ = ["Pgbouncer", "PostgresCluster", "available"]
