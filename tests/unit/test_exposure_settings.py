"""What counts as beyond loopback, a Redis password, and a matching bearer token."""

from __future__ import annotations

import pytest

from modomo.bearer import bearer_matches
from modomo.settings import Settings, SettingsError, has_password, is_loopback


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.2", False),
        ("api.internal", False),
        ("", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("url", "has"),
    [
        ("redis://:pw@h:6379/0", True),
        ("rediss://default:pw@h:6380/0", True),
        ("redis://h:6379/0?password=pw", True),
        ("unix:///run/redis.sock?password=pw", True),
        ("redis://h:6379/0", False),
        ("redis://user@h:6379/0", False),
        ("redis://:@h:6379/0", False),
        ("redis://h:6379/0?password=", False),
    ],
)
def test_redis_password(url: str, has: bool) -> None:
    assert has_password(url) is has


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        ("Bearer tok", True),
        ("bearer tok", True),
        ("Bearer  tok ", True),
        ("Bearer tok2", False),
        ("Bearer to", False),
        ("Basic tok", False),
        ("tok", False),
        ("", False),
        ("Bearer \udcff", False),
    ],
)
def test_bearer(header: str, matches: bool) -> None:
    assert bearer_matches(header, "tok") is matches


@pytest.mark.parametrize("ttl", ["300", "600", "900"])
def test_presign_ttl_within_the_specifications_range(ttl: str) -> None:
    assert Settings.from_env({"MODOMO_PRESIGN_TTL_S": ttl}).presign_ttl_s == int(ttl)


def test_a_side_door_turned_off_is_not_exposed() -> None:
    off = Settings.from_env({"MODOMO_WORKER_HTTP_HOST": "0.0.0.0", "MODOMO_WORKER_HTTP_PORT": "0"})
    assert off.exposed == ()
    with pytest.raises(SettingsError, match=r"^MODOMO_JWT_SECRET"):
        Settings.from_env({"MODOMO_METRICS_HOST": "0.0.0.0", "MODOMO_METRICS_PORT": "9100"})
