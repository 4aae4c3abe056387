"""Deterministic object ids: the same scene and detection give the same id on every retry,
so a retry overwrites its artifacts (``masks/<scene>/<object>.png``) instead of adding more."""

from __future__ import annotations

import uuid


def scene_namespace(scene_id: str) -> uuid.UUID:
    """The scene id as a UUID namespace (hashed into one when it is not a UUID)."""
    try:
        return uuid.UUID(scene_id)
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"modomo:scene:{scene_id}")


def object_id(scene_id: str, source: str, index: int) -> str:
    """The id of the ``index``-th object ``source`` (``detect`` or ``label``) found."""
    return str(uuid.uuid5(scene_namespace(scene_id), f"{source}:{index}"))
