"""Fixtures of the fault tests: the integration fixtures (key prefix, Redis, PostgreSQL
schemas, the session's SeaweedFS), plus a Redis of the test's own that it may kill.

Every test here is marked ``faults`` and ``integration``; they run in ``just test``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.servers import RedisServer
from tests.integration.conftest import (  # noqa: F401 - fixtures, shared
    db_settings,
    prefix,
    redis,
    s3_endpoint,
    settings,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server with AOF (appendfsync everysec) on a free port, for this test."""
    with RedisServer(tmp_path / "redis") as server:
        yield server
