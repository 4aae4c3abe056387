"""The session's S3-compatible server (SeaweedFS) on loopback, for the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

from tests.faults.servers import ACCESS_KEY, SECRET_KEY, SeaweedFS, weed_binary

__all__ = ["ACCESS_KEY", "SECRET_KEY", "SeaweedFS", "start_seaweedfs", "weed_binary"]


def start_seaweedfs() -> Iterator[str]:
    """Start ``weed mini`` on free ports; yield its S3 endpoint URL; stop it afterwards."""
    with SeaweedFS() as server:
        yield server.endpoint
