"""Images behind stable API links, signed for S3 only when a browser asks for one.

Presigning a GET with botocore costs ~0.3 ms of CPU, and a scene with 13 objects carries
28 image URLs: signing them all on every ``GET /scenes/:id`` cost more than the rest of
the request. So the scene's JSON carries links to this API instead,
``/media/<key>?exp=<unix time>&sig=<HMAC>``, which cost two microseconds each: an HMAC of
the key and the expiry under a key derived from the API's secret. ``GET /media/<key>``
checks the link and redirects (302) to a presigned S3 URL, signed then or taken from a
short-lived cache.

- **Links** (:class:`MediaLinks`) expire like presigned URLs: at least
  ``MODOMO_PRESIGN_TTL_S`` after being handed out, at most 1.5 times that. The expiry is
  rounded up to a window of half the TTL, so a link stays the same for that window and
  the browser's cache can reuse the image. Every API process derives the same key from
  ``MODOMO_JWT_SECRET``, so any instance honours a link another one wrote.
- **Signatures** (:class:`PresignCache`) are reused for the first half of their lifetime
  only: a redirect always points at a URL with at least half its TTL left, and says so in
  ``Cache-Control: max-age``, which stops short of the URL's expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

Clock = Callable[[], float]

MEDIA_PATH = "/media"
_SIG_BYTES = 16
"""128 bits of HMAC-SHA256: plenty against forgery, and short in the JSON."""


def media_key(secret: str) -> bytes:
    """The HMAC key for media links, derived from the API's secret (never the secret
    itself, so a link never helps anyone forge a bearer token)."""
    return hmac.new(secret.encode(), b"modomo media links v1", hashlib.sha256).digest()


class MediaLinks:
    """Writes and checks ``/media/<key>?exp=&sig=`` links."""

    def __init__(self, key: bytes, ttl_s: int, clock: Clock = time.time) -> None:
        self._key = key
        self.ttl_s = ttl_s
        self.window_s = max(1, ttl_s // 2)
        self._clock = clock
        self._window = -1
        self._memo: dict[str, str] = {}

    def _sign(self, object_key: str, expires: int) -> str:
        mac = hmac.new(self._key, f"{object_key}\n{expires}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()[:_SIG_BYTES]).rstrip(b"=").decode()

    def linker(self, origin: str) -> Linker:
        """Links for one response: the clock is read once, not once per link."""
        now = self._clock()
        window = math.floor(now / self.window_s)
        if window != self._window or len(self._memo) > 100_000:
            # A new window, a new expiry: the links of the last one are not reused.
            self._window, self._memo = window, {}
        # The same for the whole window (and in every process): at least the TTL away.
        return Linker(self, origin, window, (window + 1) * self.window_s + self.ttl_s)

    def check(self, object_key: str, expires: int, sig: str) -> str | None:
        """None when the link is genuine and unexpired; otherwise why not."""
        expected = self._sign(object_key, expires)
        if not hmac.compare_digest(expected.encode(), sig.encode()):
            return "the media link's signature does not match its key and expiry"
        if self._clock() >= expires:
            return "the media link has expired; read the scene again for a fresh one"
        return None


class Linker:
    """The absolute link (origin + path) of an object key, or None for None."""

    __slots__ = ("_links", "expires", "origin", "window")

    def __init__(self, links: MediaLinks, origin: str, window: int, expires: int) -> None:
        self._links, self.origin, self.window, self.expires = links, origin, window, expires

    def __call__(self, object_key: str | None) -> str | None:
        if object_key is None:
            return None
        memo = self._links._memo
        found = memo.get(object_key)
        if found is None:
            # Keys are ours (scenes/..., masks/...), but quote them anyway for the URL.
            found = memo[object_key] = (
                f"{MEDIA_PATH}/{quote(object_key)}?exp={self.expires}"
                f"&sig={self._links._sign(object_key, self.expires)}"
            )
        return self.origin + found


@dataclass(frozen=True, slots=True)
class Signed:
    url: str
    signed_at: float
    expires_at: float


class PresignCache:
    """Presigned GET URLs by object key, each reused for the first ``reuse`` fraction of
    its lifetime and never after (so never past its expiry)."""

    def __init__(
        self,
        presign: Callable[[str, int], Awaitable[str]],
        ttl_s: int,
        reuse: float = 0.5,
        clock: Clock = time.time,
        max_entries: int = 100_000,
    ) -> None:
        if not 0 <= reuse < 1:
            raise ValueError("reuse must be in [0, 1)")
        self._presign = presign
        self.ttl_s = ttl_s
        self._reuse_s = ttl_s * reuse
        self._clock = clock
        self._max = max_entries
        self._entries: dict[str, Signed] = {}

    async def get(self, object_key: str) -> Signed:
        now = self._clock()
        found = self._entries.get(object_key)
        if found is not None and now < found.signed_at + self._reuse_s:
            return found
        # The clock is read before signing: the URL's real expiry is no earlier.
        fresh = Signed(await self._presign(object_key, self.ttl_s), now, now + self.ttl_s)
        if len(self._entries) >= self._max:
            self._evict(now)
        self._entries[object_key] = fresh
        return fresh

    def _evict(self, now: float) -> None:
        stale = [k for k, v in self._entries.items() if now >= v.signed_at + self._reuse_s]
        for k in stale:
            del self._entries[k]
        if len(self._entries) >= self._max:
            self._entries.clear()

    def max_age_s(self, signed: Signed) -> int:
        """How long a browser may keep a redirect to ``signed``: until a tenth of the TTL
        (at least 5 s) before the URL expires, so it is never followed once dead."""
        margin = max(5.0, self.ttl_s / 10)
        return max(0, int(signed.expires_at - margin - self._clock()))
