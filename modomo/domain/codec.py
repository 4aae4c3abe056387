"""Encoding events to bytes and back, with upcasting of older schema versions.

The fast path is one typed msgspec decode into the :data:`Event` union. Only when that
fails, or when the decoded event's ``v`` is older than its class's current version, is the
payload decoded as plain JSON, passed through the registered upcasters one version at a
time (``(tag, from_version) -> function(dict) -> dict``) and converted to the current class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from modomo.domain.events import EVENT_TYPES, Event, EventBase

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Rewrites one event's JSON object from version N to version N + 1."""

UPCASTERS: dict[tuple[str, int], Upcaster] = {}
"""Upcasters of the shipped event classes; empty while every event is at version 1."""


class EventDecodeError(ValueError):
    """Bytes that are not a readable event; the message says why."""


def current_version(cls: type[EventBase]) -> int:
    """The schema version that ``cls`` writes today (its ``v`` default)."""
    for field in msgspec.structs.fields(cls):
        if field.name == "v":
            return int(field.default)
    raise TypeError(f"{cls.__name__} has no version field")


class EventCodec:
    """Encoder and decoder for the whole union, built once and reused."""

    def __init__(self, upcasters: Mapping[tuple[str, int], Upcaster] | None = None) -> None:
        self._upcasters = UPCASTERS if upcasters is None else upcasters
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(Event)
        self._raw = msgspec.json.Decoder(dict[str, Any])
        self._versions = {tag: current_version(cls) for tag, cls in EVENT_TYPES.items()}

    def encode(self, event: EventBase) -> bytes:
        """The event as compact JSON."""
        return self._encoder.encode(event)

    def decode(self, data: bytes | str) -> Event:
        """An event from JSON, upcast to its current version; raises EventDecodeError."""
        try:
            event: Event = self._decoder.decode(data)
        except msgspec.DecodeError as exc:
            return self._decode_slow(data, exc)
        if event.v == self._versions[type(event).__struct_config__.tag]:  # type: ignore[index]
            return event
        return self._decode_slow(data, None)

    def _decode_slow(self, data: bytes | str, first: msgspec.DecodeError | None) -> Event:
        try:
            raw = self._raw.decode(data)
        except msgspec.DecodeError as exc:
            raise EventDecodeError(f"not a JSON object: {exc}") from None
        tag = raw.get("type")
        if not isinstance(tag, str) or tag not in self._versions:
            raise EventDecodeError(f"unknown event type {tag!r}")
        version = raw.get("v", 1)
        current = self._versions[tag]
        if not isinstance(version, int) or version < 1:
            raise EventDecodeError(f"{tag}: bad schema version {version!r}")
        if version > current:
            raise EventDecodeError(
                f"{tag} v{version} is newer than this code understands (v{current})"
            )
        if version == current and first is not None:
            raise EventDecodeError(f"{tag}: {first}") from None
        while version < current:
            upcast = self._upcasters.get((tag, version))
            if upcast is None:
                raise EventDecodeError(f"{tag} v{version}: no upcaster to v{version + 1}")
            raw = upcast(dict(raw))
            version += 1
            raw["v"] = version
        try:
            event: Event = msgspec.convert(raw, Event)
            return event
        except msgspec.ValidationError as exc:
            raise EventDecodeError(f"{tag} after upcasting: {exc}") from None


CODEC = EventCodec()
"""The process-wide codec for the shipped event classes."""

encode = CODEC.encode
decode = CODEC.decode
