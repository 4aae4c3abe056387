"""Media links, the presigned-URL cache, the token cache, and stream entry ids: properties."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar.exceptions import NotAuthorizedException

from modomo.api.auth import TokenCache, issue_token
from modomo.api.links import MediaLinks, PresignCache, media_key
from modomo.streams.entries import entries_of, field_of, next_id, parse_id, streams_of


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _parts(link: str) -> tuple[str, int, str]:
    split = urlsplit(link)
    query = parse_qs(split.query)
    return unquote(split.path.removeprefix("/media/")), int(query["exp"][0]), query["sig"][0]


keys = st.from_regex(r"(scenes|masks|thumbs|depth)/[a-z0-9-]{1,40}(/[a-z0-9-]{1,40})?\.(jpg|png)")


@given(key=keys, ttl=st.integers(2, 3600), start=st.floats(1e9, 2e9), later=st.floats(0, 1e4))
def test_a_link_is_valid_for_at_least_the_ttl_and_refused_once_expired(
    key: str, ttl: int, start: float, later: float
) -> None:
    clock = Clock(start)
    links = MediaLinks(media_key("s" * 32), ttl, clock)
    link = links.linker("http://api")(key)
    assert link is not None
    assert link.startswith("http://api/media/")
    path_key, expires, sig = _parts(link.removeprefix("http://api"))
    assert path_key == key
    assert start + ttl <= expires < start + ttl + ttl // 2 + 1
    clock.now = start + later
    verdict = links.check(key, expires, sig)
    if clock.now < expires:
        assert verdict is None
    else:
        assert verdict is not None
        assert "expired" in verdict


@given(key=keys, other=keys, flip=st.integers(0, 21))
def test_a_tampered_link_is_refused(key: str, other: str, flip: int) -> None:
    links = MediaLinks(media_key("s" * 32), 600, Clock())
    link = links.linker("")(key)
    assert link is not None
    _, expires, sig = _parts(link)
    assert links.check(key, expires, sig) is None
    forged = sig[:flip] + ("A" if sig[flip] != "A" else "B") + sig[flip + 1 :]
    assert links.check(key, expires, forged) is not None
    assert links.check(key, expires + 600, sig) is not None  # a later expiry, same signature
    if other != key:
        assert links.check(other, expires, sig) is not None
    # Another secret (another deployment) does not honour it either.
    assert MediaLinks(media_key("t" * 32), 600, Clock()).check(key, expires, sig) is not None


def test_links_are_stable_within_a_window_and_the_same_in_every_process() -> None:
    clock = Clock(1_800_000_000.0)
    one, two = (MediaLinks(media_key("s" * 32), 600, clock) for _ in range(2))
    first = one.linker("")("scenes/a.jpg")
    clock.now += 100
    assert one.linker("")("scenes/a.jpg") == first == two.linker("")("scenes/a.jpg")
    clock.now += 300  # past the 300 s window: a new expiry
    assert one.linker("")("scenes/a.jpg") != first
    assert one.linker("")(None) is None


@settings(max_examples=200)
@given(
    ttl=st.integers(1, 3600),
    steps=st.lists(st.tuples(st.floats(0, 2000), st.sampled_from(["a", "b", "c"])), max_size=40),
)
def test_a_cached_signature_is_never_served_past_its_expiry(
    ttl: int, steps: list[tuple[float, str]]
) -> None:
    clock = Clock(1_000.0)
    signed_at: dict[str, float] = {}

    async def presign(key: str, ttl_s: int) -> str:
        signed_at[f"{key}@{clock.now}"] = clock.now
        return f"{key}@{clock.now}"

    cache = PresignCache(presign, ttl, clock=clock)

    async def run() -> None:
        for advance, key in steps:
            clock.now += advance
            signed = await cache.get(key)
            expiry = signed_at[signed.url] + ttl
            # Served with at least half its life left, and never at or past its expiry.
            assert expiry - clock.now >= ttl / 2
            assert signed.expires_at == expiry
            # A browser may keep the redirect only while the URL still works.
            assert clock.now + cache.max_age_s(signed) < expiry

    asyncio.run(run())


def test_the_cache_signs_each_key_once_per_half_life() -> None:
    clock = Clock(0.0)
    calls: list[str] = []

    async def presign(key: str, ttl_s: int) -> str:
        calls.append(key)
        return f"{key}-{len(calls)}"

    cache = PresignCache(presign, 600, clock=clock)

    async def run() -> list[str]:
        urls = [(await cache.get("k")).url for _ in range(3)]
        clock.now = 299.0
        urls.append((await cache.get("k")).url)
        clock.now = 300.0
        urls.append((await cache.get("k")).url)
        return urls

    assert asyncio.run(run()) == ["k-1", "k-1", "k-1", "k-1", "k-2"]
    with pytest.raises(ValueError, match="reuse"):
        PresignCache(presign, 600, reuse=1.0)


def test_a_verified_token_is_kept_only_until_it_expires() -> None:
    secret = "x" * 32
    tokens = TokenCache(secret)
    token = issue_token(secret, "alice", "viewer", ttl_s=2)
    assert tokens.caller(token).subject == "alice"
    assert tokens.caller(token).role == "viewer"  # from the cache this time
    with pytest.raises(NotAuthorizedException, match="invalid"):
        TokenCache("y" * 32).caller(token)  # another secret: never from this cache
    expired = issue_token(secret, "bob", "viewer", ttl_s=-1)
    with pytest.raises(NotAuthorizedException, match="expired"):
        tokens.caller(expired)
    bad_role = jwt.encode({"sub": "c", "role": "root", "exp": 2**40}, secret, algorithm="HS256")
    with pytest.raises(NotAuthorizedException, match="role"):
        tokens.caller(bad_role)


@given(ms=st.integers(0, 2**63), seq=st.integers(0, 2**63))
def test_entry_ids_parse_in_stream_order(ms: int, seq: int) -> None:
    text = f"{ms}-{seq}"
    assert parse_id(text) == (ms, seq)
    assert parse_id(text.encode()) == (ms, seq)
    assert parse_id(next_id(text)) > parse_id(text)
    assert parse_id(str(ms)) == (ms, 0)


def test_replies_of_both_protocols_unwrap_alike() -> None:
    entries = [(b"1-0", [b"event", b"{}"]), (b"1-1", [b"other", b"x", b"event", b"{}"])]
    resp2 = [[b"k", entries], [b"j", entries[:1]]]
    resp3 = {b"k": entries, b"j": entries[:1]}
    assert list(streams_of(resp2)) == list(streams_of(resp3))
    assert entries_of(resp2) == entries_of(resp3) == entries
    assert entries_of(None) == []
    assert [field_of(flat, b"event") for _, flat in entries] == [b"{}", b"{}"]
    assert field_of([b"other", b"x"], b"event") is None
    with pytest.raises(ValueError, match="invalid literal"):
        parse_id("not-an-id")
