"""Object stages: detect (YOLOv8), label (GroundingDINO) and segment (SAM2 from boxes).

Detections keep only COCO classes in :data:`COCO_TO_CATEGORY` (furniture and decor);
people, vehicles, food and the rest are dropped rather than forced into a furniture code.
GroundingDINO scores every FURNITURE prompt for every box; a label box overlapping a
detection (IoU >= 0.5) names that object, any other becomes a new object with an id of its
own. SAM2 then masks every object, from both sources, with its box as the prompt.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from modomo.domain.events import BBox, Detection, Label
from modomo.domain.taxonomies import COCO_TO_CATEGORY, FURNITURE
from modomo.gpu.models import Detector, HFModel, Segmenter
from modomo.gpu.runtime import Runtime, inference
from modomo.gpu.stages.boxes import clamp_box, iou, to_pixels
from modomo.gpu.stages.ids import object_id

MAX_OBJECTS = 50
"""Most objects one stage reports per scene (the best-scoring ones)."""
MERGE_IOU = 0.5
"""A label box this close to a detection names that detection instead of a new object."""
THUMB_PX = 256


@dataclass(frozen=True, slots=True)
class SceneObject:
    """An object the later stages work on, whichever stage found it."""

    object_id: str
    bbox: BBox
    confidence: float


def detect(
    detector: Detector,
    runtime: Runtime,
    images: Sequence[Image.Image],
    scene_ids: Sequence[str],
    confidence: float,
) -> list[tuple[Detection, ...]]:
    """YOLOv8 boxes per image, mapped to furniture codes, best first."""
    # PIL in, not numpy: ultralytics reads numpy arrays as BGR.
    results = detector.model.predict(
        list(images),
        imgsz=detector.imgsz,
        conf=confidence,
        max_det=min(detector.max_det, MAX_OBJECTS),
        device=runtime.device,
        # fp16 on CUDA (ultralytics warns that ``half`` is deprecated, but only there).
        **({"half": True} if runtime.cuda and runtime.dtype_name != "float32" else {}),
        verbose=False,
    )
    runtime.restore_threads()
    out = []
    for result, scene_id in zip(results, scene_ids, strict=True):
        names = result.names
        boxes = result.boxes
        xyxyn = boxes.xyxyn.cpu().numpy()
        confs = boxes.conf.cpu().numpy()
        classes = boxes.cls.cpu().numpy().astype(int)
        kept = []
        for n in np.argsort(-confs, kind="stable"):
            name = str(names[int(classes[n])])
            category = COCO_TO_CATEGORY.get(name)
            if category is None:
                continue
            kept.append((name, category, float(confs[n]), clamp_box(*map(float, xyxyn[n]))))
        out.append(
            tuple(
                Detection(
                    object_id=object_id(scene_id, "detect", i),
                    category=category,
                    confidence=round(conf, 5),
                    bbox=box,
                    label=name,
                )
                for i, (name, category, conf, box) in enumerate(kept)
            )
        )
    return out


def _prompt_ids(tokenizer: Any) -> tuple[list[int], list[tuple[int, int]]]:
    """``[CLS] prompt . prompt . ... [SEP]`` and each FURNITURE prompt's token span."""
    ids = [tokenizer.cls_token_id]
    spans = []
    dot = tokenizer.convert_tokens_to_ids(".")
    for prompt in FURNITURE.prompts():
        tokens = tokenizer.encode(prompt, add_special_tokens=False)
        spans.append((len(ids), len(ids) + len(tokens)))
        ids.extend(tokens)
        ids.append(dot)
    ids.append(tokenizer.sep_token_id)
    return ids, spans


def label(
    grounder: HFModel,
    runtime: Runtime,
    images: Sequence[Image.Image],
    scene_ids: Sequence[str],
    detections: Sequence[Sequence[Detection]],
    box_threshold: float,
) -> list[tuple[Label, ...]]:
    """Open-vocabulary categories per image, merged with that image's detections."""
    import torch
    from torchvision.ops import nms

    processor = grounder.processor
    ids, spans = _prompt_ids(processor.tokenizer)
    pixels = processor.image_processor(images=list(images), return_tensors="pt")
    n = len(images)
    input_ids = torch.tensor([ids] * n, device=runtime.device)
    with inference(runtime):
        outputs = grounder.model(
            pixel_values=pixels["pixel_values"].to(runtime.device),
            pixel_mask=pixels["pixel_mask"].to(runtime.device),
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            token_type_ids=torch.zeros_like(input_ids),
        )
    token_probs = outputs.logits.float().sigmoid().cpu()  # (n, queries, text_len)
    term_probs = torch.stack([token_probs[..., a:b].max(dim=-1).values for a, b in spans], -1)
    boxes_cxcywh = outputs.pred_boxes.float().cpu()
    out = []
    for b in range(n):
        scores, terms = term_probs[b].max(dim=-1)
        cx, cy, w, h = boxes_cxcywh[b].unbind(-1)
        xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1).clamp(0, 1)
        keep = (scores >= box_threshold).nonzero().flatten()
        keep = keep[nms(xyxy[keep], scores[keep], 0.5)][:MAX_OBJECTS]
        codes = FURNITURE.codes()
        prompts = FURNITURE.prompts()
        labels = []
        new_index = 0
        for q in keep.tolist():
            box = clamp_box(*map(float, xyxy[q]))
            match = max(detections[b], key=lambda d: iou(d.bbox, box), default=None)
            if match is not None and iou(match.bbox, box) >= MERGE_IOU:
                oid = match.object_id
            else:
                oid = object_id(scene_ids[b], "label", new_index)
                new_index += 1
            term = int(terms[q])
            labels.append(
                Label(
                    object_id=oid,
                    category=codes[term],
                    confidence=round(float(scores[q]), 5),
                    bbox=box,
                    phrase=prompts[term],
                )
            )
        out.append(tuple(_one_label_per_object(labels)))
    return out


def _one_label_per_object(labels: list[Label]) -> list[Label]:
    """Keep the best label of each object (several boxes can match one detection)."""
    seen: set[str] = set()
    kept = []
    for item in labels:  # already best first
        if item.object_id not in seen:
            seen.add(item.object_id)
            kept.append(item)
    return kept


def scene_objects(
    detections: Sequence[Detection] | None, labels: Sequence[Label] | None
) -> list[SceneObject]:
    """Every object a scene has so far: its detections, then objects only labels found."""
    objects = [SceneObject(d.object_id, d.bbox, d.confidence) for d in detections or ()]
    known = {o.object_id for o in objects}
    for item in labels or ():
        if item.object_id not in known:
            known.add(item.object_id)
            objects.append(SceneObject(item.object_id, item.bbox, item.confidence))
    return objects


def segment(
    segmenter: Segmenter,
    runtime: Runtime,
    images: Sequence[Image.Image],
    objects: Sequence[Sequence[SceneObject]],
) -> list[list[np.ndarray]]:
    """One boolean mask (H, W) per object per image, prompted by the object's box."""
    predictor = segmenter.predictor
    arrays = [np.array(image.convert("RGB")) for image in images]  # writable: torch wants it
    out: list[list[np.ndarray]] = [[] for _ in images]
    todo = [i for i, objs in enumerate(objects) if objs]
    if not todo:
        return out
    boxes = []
    for i in todo:
        h, w = arrays[i].shape[:2]
        boxes.append(np.array([to_pixels(o.bbox, w, h) for o in objects[i]], dtype=np.float32))
    with inference(runtime):
        predictor.set_image_batch([arrays[i] for i in todo])
        masks_batch, _, _ = predictor.predict_batch(
            box_batch=boxes, multimask_output=False, return_logits=False
        )
    for i, masks in zip(todo, masks_batch, strict=True):
        masks = np.asarray(masks)
        if masks.ndim == 3:  # one box: (1, H, W) comes back without the box axis
            masks = masks[None]
        out[i] = [masks[k, 0] > 0 for k in range(masks.shape[0])]
    return out


def mask_png(mask: np.ndarray) -> bytes:
    """A mask as an 8-bit greyscale PNG, 255 inside the object."""
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(
        buffer, format="PNG", optimize=False
    )
    return buffer.getvalue()


def crop(image: Image.Image, box: BBox) -> Image.Image:
    """The object's box cut out of the image."""
    return image.crop(to_pixels(box, *image.size))


def thumbnail_jpeg(image: Image.Image, box: BBox) -> bytes:
    """The object's crop, at most ``THUMB_PX`` on its long side, as JPEG."""
    piece = crop(image, box)
    piece.thumbnail((THUMB_PX, THUMB_PX))
    buffer = io.BytesIO()
    piece.save(buffer, format="JPEG", quality=85)
    return buffer.getvalue()
