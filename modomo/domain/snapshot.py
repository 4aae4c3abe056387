"""A dataset as the log says it stood at a position: the pure fold behind exports.

The scenes fold with the same functions the scenes projector uses
(:mod:`modomo.domain.views`), so an export at a position equals the read models replayed
to that position; folding the log rather than reading the live tables is what makes an
export reproducible: the same events give the same snapshot, whatever happened since.

Review rules (the reviewer outranks the models):

- An object's verdict is its own latest review; else ``fix`` when a reviewer corrected it;
  else its scene's latest scene-level verdict when that is ``approve`` or ``fix`` (a scene
  approved as a whole approves its objects).
- An object whose own verdict is ``reject`` is in no export.
- Reviewed-only keeps objects whose verdict is ``approve`` or ``fix``, and the scenes that
  keep at least one such object or carry a scene-level ``approve``/``fix``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import msgspec

from modomo.domain.events import (
    DatasetCreated,
    EventBase,
    ObjectCorrected,
    ReviewSubmitted,
    SceneEvent,
    SceneQueued,
    SceneRequeued,
    ScenesRegistered,
)
from modomo.domain.views import ObjectRow, SceneView, Unapplicable, apply_scene_view, register

INTEREST = frozenset(
    {
        "dataset_created",
        "scenes_registered",
        "scene_queued",
        "scene_requeued",
        "scene_start",
        "scene_classified",
        "styles_classified",
        "objects_detected",
        "masks_segmented",
        "objects_labelled",
        "depth_estimated",
        "materials_classified",
        "scene_captioned",
        "palette_extracted",
        "scene_done",
        "scene_failed",
        "scene_dead",
        "object_corrected",
        "review_submitted",
    }
)
"""The event types a dataset snapshot reads (a reader decodes only these)."""

KEPT_VERDICTS = frozenset({"approve", "fix"})


class DatasetSnapshot(msgspec.Struct, kw_only=True, gc=False):
    dataset_id: str
    name: str = ""
    description: str = ""
    created: bool = False
    scenes: dict[str, SceneView] = msgspec.field(default_factory=dict)
    scene_verdicts: dict[str, str] = msgspec.field(default_factory=dict)
    """Latest scene-level verdict (a review without an object) by scene id."""
    object_verdicts: dict[str, str] = msgspec.field(default_factory=dict)
    """Latest verdict of each reviewed object, by object id."""

    def verdict(self, obj: ObjectRow) -> str | None:
        """The object's verdict under the review rules above."""
        own = self.object_verdicts.get(obj.object_id)
        if own is not None:
            return own
        if obj.corrected_by is not None:
            return "fix"
        scene = self.scene_verdicts.get(obj.scene_id)
        return scene if scene in KEPT_VERDICTS else None

    def objects(self, scene_id: str, reviewed_only: bool) -> list[ObjectRow]:
        """The scene's objects an export carries, by object id."""
        out = []
        for object_id in sorted(self.scenes[scene_id].objects):
            obj = self.scenes[scene_id].objects[object_id]
            verdict = self.verdict(obj)
            if verdict == "reject" or (reviewed_only and verdict not in KEPT_VERDICTS):
                continue
            out.append(obj)
        return out

    def scene_ids(self, reviewed_only: bool) -> list[str]:
        """The scenes an export carries, by scene id."""
        ids = sorted(self.scenes)
        if not reviewed_only:
            return ids
        return [
            s
            for s in ids
            if self.scene_verdicts.get(s) in KEPT_VERDICTS or self.objects(s, reviewed_only=True)
        ]


def fold_dataset(dataset_id: str, events: Iterable[EventBase]) -> DatasetSnapshot:
    """The dataset after ``events`` (in log order); events of other datasets are ignored,
    as are those the scenes projector would park (a scene never registered, an object
    that does not exist)."""
    snap = DatasetSnapshot(dataset_id=dataset_id)
    scenes = snap.scenes
    for event in events:
        match event:
            case DatasetCreated() if event.dataset_id == dataset_id and not snap.created:
                snap.name, snap.description, snap.created = event.name, event.description, True
            case ScenesRegistered():
                for scene in event.scenes:
                    if event.dataset_id == dataset_id:
                        scenes[scene.scene_id] = register(
                            scenes.get(scene.scene_id), dataset_id, scene, event.at
                        )
                    else:
                        # Registered again elsewhere: the read model moves it there too.
                        scenes.pop(scene.scene_id, None)
            case ReviewSubmitted() if event.scene_id in scenes:
                if event.object_id is None:
                    snap.scene_verdicts[event.scene_id] = event.verdict
                else:
                    snap.object_verdicts[event.object_id] = event.verdict
            case SceneEvent() | SceneQueued() | SceneRequeued() | ObjectCorrected():
                view = scenes.get(event.scene_id)
                if view is not None:
                    with contextlib.suppress(Unapplicable):
                        apply_scene_view(view, event)
    for view in scenes.values():
        view.touched.clear()
    return snap
