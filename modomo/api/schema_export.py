"""What the review app's types are generated from: the API's OpenAPI document and the SSE
event types, written as JSON without starting anything.

``python -m modomo.api.schema_export DIR`` writes ``DIR/openapi.json`` (the app's
``openapi-typescript`` input) and ``DIR/event-types.json``. Built with default settings, so
the output depends on the code alone and ``just test`` can tell when the committed,
generated types are stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

import msgspec

from modomo.api.app import create_app
from modomo.domain.events import EVENT_TYPES
from modomo.settings import Settings


def openapi_document() -> bytes:
    """The OpenAPI document of the API with default settings, as indented JSON."""
    document = create_app(Settings()).openapi_schema.to_schema()
    return msgspec.json.format(msgspec.json.encode(document), indent=2) + b"\n"


def event_types() -> bytes:
    """Every tag an SSE message's ``event:`` field can carry, as a JSON list."""
    return msgspec.json.format(msgspec.json.encode([*EVENT_TYPES, "unreadable"]), indent=2) + b"\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m modomo.api.schema_export DIR", file=sys.stderr)
        return 2
    folder = Path(argv[0])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "openapi.json").write_bytes(openapi_document())
    (folder / "event-types.json").write_bytes(event_types())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
