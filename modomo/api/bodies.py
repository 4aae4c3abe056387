"""Scene answers with their links, encoded once per scene version, link window and origin."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from modomo.api.links import Linker
from modomo.read.scenes import ObjectOut, SceneDocument
from modomo.read.sql import remember

_encode = msgspec.json.Encoder().encode


def link_object(link: Linker, obj: ObjectOut) -> ObjectOut:
    obj.mask_url = link(obj.mask_key)
    obj.thumb_url = link(obj.thumb_key)
    return obj


@dataclass(frozen=True, slots=True)
class _Body:
    document: SceneDocument
    window: int
    origin: str
    body: bytes


class SceneBodies:
    """Encoded ``GET /scenes/:id`` answers, each for one document (the same object while
    the scene is unchanged), one link window and one origin: a scene read again costs its
    version check and no decoding, linking or encoding."""

    def __init__(self, max_scenes: int) -> None:
        self.max_scenes = max_scenes
        self._bodies: dict[str, _Body] = {}

    def body(self, scene_id: str, document: SceneDocument, link: Linker) -> bytes:
        found = self._bodies.get(scene_id)
        if (
            found is not None
            and found.document is document
            and found.window == link.window
            and found.origin == link.origin
        ):
            return found.body
        scene = document.scene()
        scene.original_url = link(scene.r2_key_original) or ""
        scene.depth_url = link(scene.depth_key)
        for obj in scene.objects:
            link_object(link, obj)
        body = _encode(scene)
        if self.max_scenes:
            remember(
                self._bodies,
                scene_id,
                _Body(document, link.window, link.origin, body),
                self.max_scenes,
            )
        return body
