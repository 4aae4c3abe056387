"""The model registry: loads each role from a model directory, once per process.

A model directory is what ``modomo models pull`` downloads (the real weights) or what
:mod:`modomo.gpu.tiny` writes (random weights); its manifest names each role's files and the
id every result event records as ``ModelRef(id, profile)``. One CLIP serves the scene, style
and material stages; its text embeddings of each taxonomy's prompts are computed once.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from modomo.domain.events import ModelRef
from modomo.domain.taxonomies import Taxonomy
from modomo.gpu.digest import weights_digest
from modomo.gpu.manifest import ROLES, Manifest, Role, read_manifest
from modomo.gpu.runtime import Runtime, inference

log = structlog.get_logger("modomo.gpu.models")


class ModelDirError(RuntimeError):
    """The model directory is missing or incomplete."""


@dataclass(slots=True)
class Clip:
    """open_clip model, its image transform and tokenizer; cached prompt embeddings."""

    model: Any
    preprocess: Any
    tokenizer: Any
    ref: ModelRef
    runtime: Runtime
    _prompts: dict[str, Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def text_features(self, taxonomy: Taxonomy) -> Any:
        """L2-normalised embeddings of the taxonomy's prompts, ``(terms, dim)``, cached."""
        with self._lock:
            cached = self._prompts.get(taxonomy.kind)
            if cached is None:
                tokens = self.tokenizer(list(taxonomy.prompts())).to(self.runtime.device)
                with inference(self.runtime):
                    feats = self.model.encode_text(tokens).float()
                cached = feats / feats.norm(dim=-1, keepdim=True)
                self._prompts[taxonomy.kind] = cached
            return cached

    def image_features(self, images: list[Any]) -> Any:
        """L2-normalised embeddings of PIL images, one forward for the whole list."""
        import torch

        batch = torch.stack([self.preprocess(image) for image in images]).to(self.runtime.device)
        with inference(self.runtime):
            feats = self.model.encode_image(batch).float()
        return feats / feats.norm(dim=-1, keepdim=True)

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.exp().item())


@dataclass(slots=True)
class Detector:
    """A YOLOv8 model; ``imgsz`` is its input size."""

    model: Any
    imgsz: int
    max_det: int
    ref: ModelRef


@dataclass(slots=True)
class Segmenter:
    """A SAM2 image predictor, prompted with boxes."""

    predictor: Any
    ref: ModelRef


@dataclass(slots=True)
class HFModel:
    """A transformers model with its processor (GroundingDINO, DepthAnything, BLIP)."""

    model: Any
    processor: Any
    ref: ModelRef


@dataclass(slots=True)
class Models:
    """Every role, loaded on one runtime."""

    runtime: Runtime
    profile: str
    clip: Clip
    detector: Detector
    segmenter: Segmenter
    grounder: HFModel
    depth: HFModel
    captioner: HFModel
    load_seconds: dict[str, float] = field(default_factory=dict)

    def refs(self) -> dict[str, ModelRef]:
        """Role → the model reference events record."""
        return {
            "clip": self.clip.ref,
            "yolo": self.detector.ref,
            "sam2": self.segmenter.ref,
            "grounding_dino": self.grounder.ref,
            "depth": self.depth.ref,
            "captioner": self.captioner.ref,
        }


def _ref(root: Path, manifest: Manifest, role: Role) -> ModelRef:
    spec = manifest.spec(role)
    return ModelRef(id=spec.id, profile=manifest.profile, digest=weights_digest(root, spec.path))


def _load_clip(root: Path, manifest: Manifest, runtime: Runtime) -> Clip:
    import open_clip

    folder = f"local-dir:{root / manifest.clip.path}"
    model, _, preprocess = open_clip.create_model_and_transforms(folder, device=runtime.device)
    model.eval()
    tokenizer = open_clip.get_tokenizer(folder)
    return Clip(model, preprocess, tokenizer, _ref(root, manifest, "clip"), runtime)


def _load_yolo(root: Path, manifest: Manifest, runtime: Runtime) -> Detector:
    from ultralytics import YOLO

    model = YOLO(str(root / manifest.yolo.path), task="detect")
    model.to(runtime.device)
    return Detector(model, manifest.yolo.imgsz, manifest.yolo.max_det, _ref(root, manifest, "yolo"))


def _load_sam2(root: Path, manifest: Manifest, runtime: Runtime) -> Segmenter:
    from sam2.build_sam import build_sam2
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    spec = manifest.sam2
    model = build_sam2(
        spec.config,
        str(root / spec.path),
        device=runtime.device,
        hydra_overrides_extra=list(spec.overrides),
    )
    predictor = SAM2ImagePredictor(model)
    # The predictor assumes the 1024 px feature sizes; derive them from the real image size.
    size = int(model.image_size)
    predictor._bb_feat_sizes = [(size // 4, size // 4), (size // 8, size // 8), (size // 16,) * 2]
    return Segmenter(predictor, _ref(root, manifest, "sam2"))


def _load_hf(root: Path, manifest: Manifest, runtime: Runtime, role: Role) -> HFModel:
    from transformers import (
        AutoProcessor,
        BlipForConditionalGeneration,
        DepthAnythingForDepthEstimation,
        GroundingDinoForObjectDetection,
    )

    classes: dict[str, Any] = {
        "grounding_dino": GroundingDinoForObjectDetection,
        "depth": DepthAnythingForDepthEstimation,
        "captioner": BlipForConditionalGeneration,
    }
    folder = root / manifest.spec(role).path
    model = classes[role].from_pretrained(folder).to(runtime.device).eval()
    processor = AutoProcessor.from_pretrained(folder)
    return HFModel(model, processor, _ref(root, manifest, role))


def load_models(model_dir: Path, runtime: Runtime) -> Models:
    """Load every role listed in ``model_dir``'s manifest onto ``runtime``'s device."""
    manifest = read_manifest(model_dir)
    if manifest is None:
        raise ModelDirError(
            f"{model_dir} holds no model manifest: run `modomo models pull` there, or set "
            "MODOMO_MODEL_PROFILE=tiny"
        )
    missing = [r for r in ROLES if not (model_dir / manifest.spec(r).path).exists()]
    if missing:
        raise ModelDirError(f"{model_dir} lacks the files of: {', '.join(missing)}")
    seconds: dict[str, float] = {}
    loaded: dict[str, Any] = {}
    for role in ROLES:
        started = time.perf_counter()
        if role == "clip":
            loaded[role] = _load_clip(model_dir, manifest, runtime)
        elif role == "yolo":
            loaded[role] = _load_yolo(model_dir, manifest, runtime)
        elif role == "sam2":
            loaded[role] = _load_sam2(model_dir, manifest, runtime)
        else:
            loaded[role] = _load_hf(model_dir, manifest, runtime, role)
        seconds[role] = time.perf_counter() - started
    models = Models(
        runtime=runtime,
        profile=manifest.profile,
        clip=loaded["clip"],
        detector=loaded["yolo"],
        segmenter=loaded["sam2"],
        grounder=loaded["grounding_dino"],
        depth=loaded["depth"],
        captioner=loaded["captioner"],
        load_seconds=seconds,
    )
    log.info(
        "models_loaded",
        profile=manifest.profile,
        model_dir=str(model_dir),
        device=runtime.device,
        dtype=runtime.dtype_name,
        models={role: ref.id for role, ref in models.refs().items()},
        digests={role: ref.digest for role, ref in models.refs().items()},
        seconds={role: round(s, 2) for role, s in seconds.items()},
    )
    return models
