"""``modomo models pull``: fetch the real weights into the model directory.

Needs a machine with internet (it cannot run here, where model hubs are unreachable). Each
role is written in the layout the loader reads (the same one :mod:`modomo.gpu.tiny` writes
with random weights), and the manifest last, so an interrupted pull is never mistaken for
a complete one. Defaults favour licences that allow commercial use where one exists.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from modomo.gpu.manifest import Manifest, RoleSpec, write_manifest

CLIP_ARCH, CLIP_WEIGHTS = "ViT-L-14", "openai"
YOLO_WEIGHTS = "yolov8x.pt"
SAM2_REPO, SAM2_FILE = "facebook/sam2.1-hiera-large", "sam2.1_hiera_large.pt"
SAM2_CONFIG = "configs/sam2.1/sam2.1_hiera_l.yaml"
DINO_REPO = "IDEA-Research/grounding-dino-tiny"
DEPTH_REPO = "depth-anything/Depth-Anything-V2-Small-hf"  # Apache-2.0; Base/Large are NC
CAPTION_REPO = "Salesforce/blip-image-captioning-large"


def pull(model_dir: Path) -> Manifest:
    """Download every model into ``model_dir`` and write its manifest."""
    import open_clip
    from huggingface_hub import hf_hub_download
    from safetensors.torch import save_file
    from transformers import (
        AutoProcessor,
        BlipForConditionalGeneration,
        DepthAnythingForDepthEstimation,
        GroundingDinoForObjectDetection,
    )
    from ultralytics import YOLO

    model_dir.mkdir(parents=True, exist_ok=True)

    clip_dir = model_dir / "clip"
    clip_dir.mkdir(exist_ok=True)
    model, _, _ = open_clip.create_model_and_transforms(CLIP_ARCH, pretrained=CLIP_WEIGHTS)
    cfg = open_clip.get_model_config(CLIP_ARCH)
    (clip_dir / "open_clip_config.json").write_text(
        json.dumps(
            {
                "model_cfg": cfg,
                "preprocess_cfg": {
                    "size": cfg["vision_cfg"]["image_size"],
                    "mean": list(open_clip.OPENAI_DATASET_MEAN),
                    "std": list(open_clip.OPENAI_DATASET_STD),
                },
            },
            indent=1,
        )
    )
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(clip_dir / "open_clip_model.safetensors"),
    )

    yolo_dir = model_dir / "yolo"
    yolo_dir.mkdir(exist_ok=True)
    detector = YOLO(YOLO_WEIGHTS)  # downloads the released weights
    detector.save(str(yolo_dir / YOLO_WEIGHTS))

    sam_dir = model_dir / "sam2"
    sam_dir.mkdir(exist_ok=True)
    shutil.copy(hf_hub_download(SAM2_REPO, SAM2_FILE), sam_dir / "model.pt")

    for folder, repo, cls in (
        ("grounding_dino", DINO_REPO, GroundingDinoForObjectDetection),
        ("depth", DEPTH_REPO, DepthAnythingForDepthEstimation),
        ("captioner", CAPTION_REPO, BlipForConditionalGeneration),
    ):
        cls.from_pretrained(repo).save_pretrained(model_dir / folder)
        AutoProcessor.from_pretrained(repo).save_pretrained(model_dir / folder)

    manifest = Manifest(
        profile="real",
        clip=RoleSpec(id=f"open_clip:{CLIP_ARCH}/{CLIP_WEIGHTS}", path="clip", licence="MIT"),
        yolo=RoleSpec(id="ultralytics:yolov8x", path=f"yolo/{YOLO_WEIGHTS}", licence="AGPL-3.0"),
        sam2=RoleSpec(
            id="facebook/sam2.1_hiera_large",
            path="sam2/model.pt",
            licence="Apache-2.0",
            config=SAM2_CONFIG,
        ),
        grounding_dino=RoleSpec(id=DINO_REPO, path="grounding_dino", licence="Apache-2.0"),
        depth=RoleSpec(id=DEPTH_REPO, path="depth", licence="Apache-2.0"),
        captioner=RoleSpec(id=CAPTION_REPO, path="captioner", licence="BSD-3-Clause"),
    )
    write_manifest(model_dir, manifest)
    return manifest
