"""Scoring a job against a golden set, as ``modomo eval`` does.

The predictions are the job's own stage results, folded from the log with the scenes
projector's functions but from that job's events only: a reviewer's later correction or
another job's rerun does not leak into the model's score. Golden images are matched to the
job's scenes by scene id (a reviewed export carries it) or else by file name as uploaded.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import numpy as np
from redis.asyncio import Redis

from modomo.domain.events import (
    STAGE_OF,
    EvaluationRecorded,
    EventBase,
    JobCreated,
    ScenesRegistered,
    StageEvent,
    new_id,
)
from modomo.domain.orgs import DEFAULT_ORG
from modomo.domain.views import SceneView, apply_scene_view, register
from modomo.evaluate import metrics as m
from modomo.export.coco import CATEGORY_CODES
from modomo.export.pack import Blobs, decode_mask
from modomo.export.source import events_until, log_end

INTEREST: frozenset[str] = frozenset(
    {"job_created", "scenes_registered"} | {str(cls.__struct_config__.tag) for cls in STAGE_OF}
)
RANDOM_PROFILES = frozenset({"tiny", "full-random"})
TOLERANCE = {"palette_de00": 1.0, "palette_de00_median": 1.0}
"""How much worse than the previous evaluation a metric may get before it is a regression
(ΔE00 units for the palette; 0.01 for every score in 0..1)."""
DEFAULT_TOLERANCE = 0.01


class EvalError(ValueError):
    """The evaluation cannot run as asked; the message says why."""


class GoldenError(EvalError):
    """The golden set file is missing or not COCO with Modomo's fields."""


@dataclass(slots=True)
class Golden:
    name: str
    sha256: str
    document: dict[str, Any]


def load_golden(path: Path) -> Golden:
    """A golden set file: COCO with Modomo's extension fields."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise GoldenError(f"cannot read the golden set {path}: {exc.strerror}") from None
    try:
        document = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise GoldenError(f"{path} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise GoldenError(f"{path} is not a COCO document (a JSON object)")
    for key in ("images", "annotations", "categories"):
        if not isinstance(document.get(key), list):
            raise GoldenError(f"{path} is not a COCO document: no {key!r} list")
    for image in document["images"]:
        if not all(isinstance(image.get(k), int) for k in ("id", "width", "height")):
            raise GoldenError(f"{path}: every image needs integer id, width and height")
    return Golden(path.name, hashlib.sha256(data).hexdigest(), document)


@dataclass(slots=True)
class JobResults:
    dataset_id: str
    views: dict[str, SceneView] = field(default_factory=dict)
    profiles: Counter[str] = field(default_factory=Counter)
    org: str = DEFAULT_ORG
    """The job's organisation, which its evaluation belongs to as well."""


def job_results(job_id: str, events: list[EventBase]) -> JobResults:
    """The job's scenes folded from its own stage events (and the registrations)."""
    created = next((e for e in events if isinstance(e, JobCreated) and e.job_id == job_id), None)
    if created is None:
        raise EvalError(f"no job {job_id} in the log")
    out = JobResults(created.dataset_id, org=created.org)
    wanted = set(created.scene_ids)
    for event in events:
        if isinstance(event, ScenesRegistered) and event.dataset_id == created.dataset_id:
            for scene in event.scenes:
                if scene.scene_id in wanted:
                    out.views[scene.scene_id] = register(None, event.dataset_id, scene, event.at)
        elif isinstance(event, StageEvent) and event.job_id == job_id:
            view = out.views.get(event.scene_id)
            if view is not None:
                apply_scene_view(view, event)
                out.profiles[event.model.profile] += 1
    return out


def match(golden: Golden, results: JobResults) -> dict[int, str]:
    """Golden image id → scene id of the job."""
    by_name: dict[str, str] = {}
    for scene_id, view in results.views.items():
        by_name.setdefault(Path(view.row.filename).name, scene_id)
    out: dict[int, str] = {}
    for image in golden.document["images"]:
        extras = image.get("modomo") or {}
        found: str | None = extras.get("scene_id")
        if found not in results.views:
            name = extras.get("filename") or image.get("file_name") or ""
            found = by_name.get(Path(str(name)).name)
        if found is not None:
            out[image["id"]] = found
    return out


async def predictions(view: SceneView, width: int, height: int, blobs: Blobs) -> m.PredScene:
    row = view.row
    objects = []
    for obj in sorted(view.objects.values(), key=lambda o: o.object_id):
        mask = None
        if obj.mask_key:
            try:
                mask = decode_mask(await blobs.get(obj.mask_key), (width, height))
            except Exception:
                mask = None  # scored as its box; the report's notes count these
        materials = tuple(sorted(code for oid, code in view.materials if oid == obj.object_id))
        objects.append(m.PredObject(obj.category_code, obj.confidence, obj.bbox, mask, materials))
    return m.PredScene(
        scene_type=row.scene_type,
        styles=tuple(sorted(view.styles)),
        objects=objects,
        palette=[(tuple(c["lab"]), float(c["share"])) for c in row.palette or []],
        caption=row.caption,
    )


def _truth_palette(extras: dict[str, Any]) -> list[tuple[tuple[float, float, float], float]]:
    return [(tuple(c["lab"]), float(c["share"])) for c in extras.get("palette") or []]


def score(golden: Golden, preds: dict[int, m.PredScene]) -> tuple[m.Metrics, m.PerClass]:
    """Every metric of ``preds`` (by golden image id) against the golden set."""
    doc = golden.document
    images = [img for img in doc["images"] if img["id"] in preds]
    kept = {img["id"] for img in images}
    subset = {
        **doc,
        "images": images,
        "annotations": [a for a in doc["annotations"] if a["image_id"] in kept],
    }
    metrics, per_class = m.detection(subset, preds)
    extras = {img["id"]: img.get("modomo") or {} for img in images}
    typed = [i for i in sorted(kept) if extras[i].get("scene_type")]
    if typed:
        f1, each = m.macro_f1(
            [[extras[i]["scene_type"]] for i in typed],
            [[t] if (t := preds[i].scene_type) else [] for i in typed],
        )
        metrics["scene_type_f1"], per_class["scene_type_f1"] = f1, each
    styled = [i for i in sorted(kept) if extras[i].get("styles")]
    if styled:
        f1, each = m.macro_f1(
            [[s["code"] for s in extras[i]["styles"]] for i in styled],
            [list(preds[i].styles) for i in styled],
        )
        metrics["style_f1"], per_class["style_f1"] = f1, each
    truth_mats, found_mats = [], []
    for image_id in sorted(kept):
        anns = [a for a in subset["annotations"] if a["image_id"] == image_id]
        width = next(img["width"] for img in images if img["id"] == image_id)
        height = next(img["height"] for img in images if img["id"] == image_id)
        boxes = [
            (x / width, y / height, (x + w) / width, (y + h) / height)
            for x, y, w, h in (a["bbox"] for a in anns)
        ]
        pairs = m.match_objects(boxes, preds[image_id].objects)
        for i, ann in enumerate(anns):
            true = [x["code"] for x in (ann.get("modomo") or {}).get("materials") or []]
            if true:
                truth_mats.append(true)
                found_mats.append(
                    list(preds[image_id].objects[pairs[i]].materials) if i in pairs else []
                )
    if truth_mats:
        metrics["material_f1"], per_class["material_f1"] = m.macro_f1(truth_mats, found_mats)
    distances = [
        d
        for i in sorted(kept)
        if (d := m.palette_distance(_truth_palette(extras[i]), preds[i].palette)) is not None
    ]
    if distances:
        metrics["palette_de00"] = float(np.mean(distances))
        metrics["palette_de00_median"] = float(np.median(distances))
    metrics.update(
        m.caption_metrics(
            [extras[i].get("caption") for i in sorted(kept)],
            [preds[i].caption for i in sorted(kept)],
        )
    )
    return {k: round(v, 6) for k, v in metrics.items()}, per_class


def compare(
    metrics: m.Metrics, previous: m.Metrics | None
) -> tuple[dict[str, float], tuple[str, ...]]:
    """Change of each metric since ``previous``, and the metrics that regressed."""
    if previous is None:
        return {}, ()
    deltas = {k: round(v - previous[k], 6) for k, v in metrics.items() if k in previous}
    worse = []
    for name, delta in sorted(deltas.items()):
        if name.startswith("caption_") and name != "caption_truth_recall":
            continue  # sanity figures, not scores: a change is not better or worse
        limit = TOLERANCE.get(name, DEFAULT_TOLERANCE)
        if (delta > limit) if name in m.LOWER_IS_BETTER else (delta < -limit):
            worse.append(name)
    return deltas, tuple(worse)


async def evaluate(
    conn: asyncpg.Connection[Any],
    redis: Redis,
    stream: str,
    blobs: Blobs,
    golden: Golden,
    job_id: str,
    evaluated_by: str = "",
) -> EvaluationRecorded:
    """The evaluation of ``job_id`` against ``golden`` (not yet appended to the log)."""
    end = await log_end(conn, redis, stream)
    if end is None:
        raise EvalError("the log is empty: there is no job to evaluate")
    results = job_results(job_id, await events_until(conn, redis, stream, end, INTEREST))
    matched = match(golden, results)
    if not matched:
        raise EvalError(
            f"no golden image matches a scene of job {job_id} (by scene id or file name)"
        )
    sizes = {img["id"]: (img["width"], img["height"]) for img in golden.document["images"]}
    preds = {
        image_id: await predictions(results.views[scene_id], *sizes[image_id], blobs)
        for image_id, scene_id in matched.items()
    }
    metrics, per_class = score(golden, preds)
    previous = await conn.fetchrow(
        "SELECT evaluation_id, metrics FROM evaluations WHERE golden_sha256 = $1 "
        "ORDER BY created_at DESC, evaluation_id DESC LIMIT 1",
        golden.sha256,
    )
    deltas, regressions = compare(metrics, previous["metrics"] if previous else None)
    models = _models(results)
    profile = results.profiles.most_common(1)[0][0] if results.profiles else ""
    notes = []
    if profile in RANDOM_PROFILES:
        notes.append(
            f"model profile {profile}: random weights, so scores near zero are expected; "
            "the same command on a job run with real weights gives real numbers"
        )
    missing = len(golden.document["images"]) - len(matched)
    if missing:
        notes.append(f"{missing} golden image(s) matched no scene of the job and were left out")
    boxes_only = sum(1 for p in preds.values() for o in p.objects if o.mask is None)
    if boxes_only:
        notes.append(f"{boxes_only} predicted object(s) had no readable mask: scored as boxes")
    return EvaluationRecorded(
        evaluation_id=new_id(),
        golden=golden.name,
        golden_sha256=golden.sha256,
        job_id=job_id,
        models=models,
        profile=profile,
        scenes=len(matched),
        missing=missing,
        metrics=metrics,
        per_class=per_class,
        previous_id=previous["evaluation_id"] if previous else "",
        deltas=deltas,
        regressions=regressions,
        notes=tuple(notes),
        evaluated_by=evaluated_by,
        org=results.org,
    )


def _models(results: JobResults) -> dict[str, str]:
    """The model of each stage (the most frequent, should a job have mixed them)."""
    columns = {
        "scene": "scene_type_model",
        "style": "style_model",
        "detect": "detect_model",
        "label": "label_model",
        "segment": "segment_model",
        "depth": "depth_model",
        "material": "material_model",
        "caption": "caption_model",
        "palette": "palette_model",
    }
    out = {}
    for stage, column in columns.items():
        seen = Counter(
            getattr(v.row, column) for v in results.views.values() if getattr(v.row, column)
        )
        if seen:
            out[stage] = seen.most_common(1)[0][0]
    return out


def category_name(category_id: int) -> str:
    return CATEGORY_CODES.get(category_id, str(category_id))
