"""The model directory's manifest: which weights fill each role, and the ids events record.

A model directory holds one sub-folder per role plus ``modomo-models.json``. ``modomo models
pull`` writes it with the real weights; :mod:`modomo.gpu.tiny` writes the same layout with
small (or full-size) architectures and random weights, so one loader serves every profile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import msgspec

MANIFEST_NAME = "modomo-models.json"
Role = Literal["clip", "yolo", "sam2", "grounding_dino", "depth", "captioner"]
ROLES: tuple[Role, ...] = ("clip", "yolo", "sam2", "grounding_dino", "depth", "captioner")


class RoleSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Where one role's weights live in the directory and how to build it."""

    id: str
    """Recorded in every result event (``ModelRef.id``)."""
    path: str
    """File or folder, relative to the model directory."""
    licence: str = ""
    config: str = ""
    """SAM2 only: the hydra config name inside the sam2 package."""
    overrides: tuple[str, ...] = ()
    """SAM2 only: hydra overrides (a smaller image size for the tiny profile)."""
    imgsz: int = 640
    """YOLO only: the network input size."""
    max_det: int = 50
    """YOLO only: most boxes kept per image."""


class Manifest(msgspec.Struct, frozen=True, kw_only=True):
    """Contents of ``modomo-models.json``."""

    profile: str
    """``real`` for pulled weights, ``tiny`` or ``full-random`` for random ones."""
    seed: int | None = None
    clip: RoleSpec
    yolo: RoleSpec
    sam2: RoleSpec
    grounding_dino: RoleSpec
    depth: RoleSpec
    captioner: RoleSpec

    def spec(self, role: Role) -> RoleSpec:
        spec: RoleSpec = getattr(self, role)
        return spec


def read_manifest(model_dir: Path) -> Manifest | None:
    """The manifest of ``model_dir``, or ``None`` when it has none."""
    path = model_dir / MANIFEST_NAME
    if not path.is_file():
        return None
    return msgspec.json.decode(path.read_bytes(), type=Manifest)


def write_manifest(model_dir: Path, manifest: Manifest) -> None:
    """Write the manifest last, so a half-written directory is never taken for a whole one."""
    tmp = model_dir / (MANIFEST_NAME + ".tmp")
    tmp.write_bytes(msgspec.json.format(msgspec.json.encode(manifest)))
    tmp.replace(model_dir / MANIFEST_NAME)
