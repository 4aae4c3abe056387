"""The nine pipeline stages, the flags a scene task carries, and their dependencies."""

from __future__ import annotations

from typing import Literal

import msgspec

Stage = Literal[
    "scene", "style", "detect", "segment", "label", "depth", "material", "caption", "palette"
]

STAGES: tuple[Stage, ...] = (
    "scene",
    "style",
    "detect",
    "segment",
    "label",
    "depth",
    "material",
    "caption",
    "palette",
)
"""Pipeline order: a stage only reads results of stages before it."""


class StageFlags(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Which stages a job runs, as in the specification's task message (all on by default)."""

    scene: bool = True
    style: bool = True
    detect: bool = True
    segment: bool = True
    label: bool = True
    depth: bool = True
    material: bool = True
    caption: bool = True
    palette: bool = True

    def enabled(self) -> tuple[Stage, ...]:
        """The stages switched on, in pipeline order."""
        return tuple(stage for stage in STAGES if getattr(self, stage))

    def resolved(self) -> tuple[Stage, ...]:
        """The stages to run once dependencies are honoured, in pipeline order.

        ``segment`` and ``material`` work on objects, so they need ``detect`` or ``label``;
        when neither is on, the object producer ``detect`` is switched on for them.
        """
        wanted = set(self.enabled())
        if wanted & {"segment", "material"} and not wanted & {"detect", "label"}:
            wanted.add("detect")
        return tuple(stage for stage in STAGES if stage in wanted)


class SceneTask(msgspec.Struct, frozen=True, kw_only=True):
    """One message on ``<prefix>:jobs:queue``: process one scene for one job.

    ``prior_attempts`` is non-zero only when an operator re-enqueues a dead-lettered task,
    so the attempt numbers of the new deliveries continue after the old ones.
    """

    job_id: str
    scene_id: str
    r2_key_original: str
    resize_max_px: int = 1280
    stages: StageFlags = msgspec.field(default_factory=StageFlags)
    prior_attempts: int = 0
    etag: str = ""
    """The original's ETag at registration; the worker refuses (input error) an original
    that changed since. Empty for tasks enqueued before it was recorded: not checked."""
