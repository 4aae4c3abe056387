"""Digests of model weights: which bytes produced a result, recorded in every event.

A role's digest is the SHA-256 of its files (names and contents, in name order), written
``sha256:<hex>``. Hashing real weights (GBs) takes seconds, so digests are cached in
``.modomo-digests.json`` in the model directory, keyed by each file's size and mtime: a
changed file is hashed again. A read-only directory just goes without the cache.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import structlog

CACHE_NAME = ".modomo-digests.json"
_CHUNK = 1024 * 1024
log = structlog.get_logger("modomo.gpu.digest")


def _files(target: Path) -> list[Path]:
    if target.is_file():
        return [target]
    return sorted(p for p in target.rglob("*") if p.is_file())


def _fingerprint(root: Path, files: list[Path]) -> list[list[str | int]]:
    return [[str(f.relative_to(root)), f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def weights_digest(root: Path, relative: str) -> str:
    """``sha256:<hex>`` of the weights at ``root/relative`` (a file or a folder)."""
    target = root / relative
    files = _files(target)
    fingerprint = _fingerprint(root, files)
    cache_path = root / CACHE_NAME
    try:
        cache: dict[str, dict[str, object]] = json.loads(cache_path.read_text())
    except (OSError, ValueError):
        cache = {}
    known = cache.get(relative)
    if known is not None and known.get("files") == fingerprint:
        return str(known["digest"])
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    value = f"sha256:{digest.hexdigest()}"
    cache[relative] = {"files": fingerprint, "digest": value}
    try:
        tmp = cache_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cache, indent=1))
        tmp.replace(cache_path)
    except OSError as exc:
        log.info("digest_cache_not_written", model_dir=str(root), error=str(exc))
    return value
