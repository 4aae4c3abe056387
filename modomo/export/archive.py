"""Building an export: the snapshot at a position, its files, a manifest, one zip.

Reproducible by construction: the snapshot is a pure fold of the log up to the position,
files are written in a fixed order with fixed zip timestamps and permissions, and the
manifest holds nothing that varies between runs (no export id, no wall-clock time: the
COCO ``date_created`` is the time of the log position). The same position, code and
library versions give a byte-identical archive; the manifest names the position, so a
training run can cite exactly what it trained on.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from modomo.domain.events import ExportFormat
from modomo.domain.snapshot import DatasetSnapshot
from modomo.export.coco import coco_files
from modomo.export.pack import Blobs, ExportError, gather
from modomo.export.table import parquet_files
from modomo.export.yolo import yolo_files
from modomo.projections.projector import parse_id

MANIFEST_VERSION = 1
FORMATS: tuple[ExportFormat, ...] = ("coco", "yolo", "yolo-seg", "parquet")
_EPOCH = (1980, 1, 1, 0, 0, 0)
_STORED = (".jpg", ".png", ".webp", ".parquet")
"""Already compressed: deflating them again costs time and saves nothing."""


@dataclass(frozen=True, slots=True)
class BuiltExport:
    data: bytes
    manifest: dict[str, Any]
    scenes: int
    objects: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def zip_files(files: dict[str, bytes]) -> bytes:
    """A zip of ``files`` whose bytes depend only on the names and contents."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            stored = name.endswith(_STORED)
            info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
            archive.writestr(info, files[name], compresslevel=None if stored else 6)
    return out.getvalue()


def position_time(position: str) -> str:
    """When the entry at ``position`` was appended (its id's milliseconds), ISO 8601."""
    ms, _ = parse_id(position)
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat()


async def build_export(
    snapshot: DatasetSnapshot,
    *,
    fmt: ExportFormat,
    position: str,
    reviewed_only: bool,
    blobs: Blobs,
    progress: Callable[[int, int], None] | None = None,
) -> BuiltExport:
    """The archive of ``snapshot`` (the dataset folded up to ``position``) in ``fmt``."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
    if not snapshot.created:
        raise ExportError(f"dataset {snapshot.dataset_id} does not exist at position {position}")
    packs = await gather(
        snapshot,
        reviewed_only=reviewed_only,
        blobs=blobs,
        images=fmt != "parquet",
        progress=progress,
    )
    objects = sum(len(p.objects) for p in packs)
    manifest: dict[str, Any] = {
        "modomo_export": MANIFEST_VERSION,
        "format": fmt,
        "dataset": {
            "id": snapshot.dataset_id,
            "name": snapshot.name,
            "description": snapshot.description,
        },
        "position": position,
        "position_time": position_time(position),
        "reviewed_only": reviewed_only,
        "scenes": len(packs),
        "objects": objects,
        "categories": "FURNITURE taxonomy, in order (COCO ids from 1, YOLO classes from 0)",
    }
    description = f"{snapshot.name} (Modomo dataset {snapshot.dataset_id})"
    if fmt == "coco":
        files = coco_files(packs, description, position, position_time(position))
    elif fmt == "parquet":
        files = parquet_files(packs, manifest)
    else:
        header = f"Modomo export of {description} at log position {position}"
        files = yolo_files(packs, segment=fmt == "yolo-seg", header=header)
    manifest["files"] = [
        {"path": name, "bytes": len(files[name]), "sha256": hashlib.sha256(files[name]).hexdigest()}
        for name in sorted(files)
    ]
    files["manifest.json"] = msgspec.json.format(msgspec.json.encode(manifest))
    return BuiltExport(zip_files(files), manifest, len(packs), objects)
