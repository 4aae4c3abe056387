"""Model directories with random weights: the ``tiny`` and ``full-random`` profiles.

Each role is built from a config (no download), given random weights under a fixed seed,
and saved in the layout ``modomo models pull`` gives real weights, so the production loader
in :mod:`modomo.gpu.models` is the code that loads them. ``tiny`` shrinks every
architecture until a CPU runs all nine stages in about a second; ``full-random`` builds the
default production architectures at full size (random weights cost the same compute as
trained ones), for benchmarks on a GPU.

Tokenizers work offline: open_clip's BPE vocabulary ships in its wheel, and the BERT
vocabulary of GroundingDINO and BLIP is generated here from the taxonomies' prompts, with
the ids GroundingDINO hard-codes ([CLS] 101, [SEP] 102, "." 1012, "?" 1029) in place.
"""

from __future__ import annotations

import json
import re
import string
from pathlib import Path
from typing import Any, Literal

from modomo.domain.taxonomies import TAXONOMIES
from modomo.gpu.manifest import Manifest, RoleSpec, write_manifest

Size = Literal["tiny", "full"]

_FIXED_IDS = {
    0: "[PAD]",
    100: "[UNK]",
    101: "[CLS]",
    102: "[SEP]",
    103: "[MASK]",
    1012: ".",
    1029: "?",
}
DEC_TOKEN = "[DEC]"
"""BLIP's decoder start token (id 30522 in the real vocabulary)."""
_EXTRA_WORDS = (
    "a an the of in on with and room photo interior style wall floor light white black grey "
    "brown beige blue green red wooden large small modern cozy bright view table near"
)


def bert_vocab() -> list[str]:
    """A BERT WordPiece vocabulary covering every taxonomy prompt, at the standard ids."""
    words: list[str] = []
    seen = set(_FIXED_IDS.values()) | {DEC_TOKEN}
    text = " ".join(t.prompt for tax in TAXONOMIES.values() for t in tax.terms) + " " + _EXTRA_WORDS
    candidates = [*re.findall(r"[a-z0-9]+", text.lower())]
    candidates += list(string.ascii_lowercase + string.digits)
    candidates += [f"##{c}" for c in string.ascii_lowercase + string.digits]
    candidates += list("-',!;:()/&")
    for word in candidates:
        if word not in seen:
            seen.add(word)
            words.append(word)
    vocab: list[str] = []
    pending = iter([DEC_TOKEN, *words])
    for index in range(1030):
        if index in _FIXED_IDS:
            vocab.append(_FIXED_IDS[index])
        elif index >= 104:
            vocab.append(next(pending, f"[unused{index}]"))
        else:
            vocab.append(f"[unused{index}]")
    vocab.extend(pending)
    return vocab


def _bert_tokenizer(folder: Path) -> Any:
    """A BERT tokenizer over :func:`bert_vocab` (transformers 5 ignores ``vocab_file``)."""
    from transformers import BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {token: index for index, token in enumerate(bert_vocab())}
    return BertTokenizer(vocab=vocab, do_lower_case=True)


def _seeded(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def write_clip(folder: Path, size: Size, seed: int) -> RoleSpec:
    """An open_clip model saved in its ``local-dir:`` layout (config JSON + safetensors)."""
    import open_clip
    from safetensors.torch import save_file

    if size == "tiny":
        cfg: dict[str, Any] = {
            "embed_dim": 64,
            "vision_cfg": {
                "image_size": 64,
                "layers": 2,
                "width": 64,
                "patch_size": 16,
                "head_width": 32,
            },
            "text_cfg": {
                "context_length": 77,
                "vocab_size": 49408,
                "width": 64,
                "heads": 2,
                "layers": 2,
            },
        }
        name = "open_clip:tiny-vit"
    else:
        cfg = open_clip.get_model_config("ViT-L-14")
        name = "open_clip:ViT-L-14/random"
    _seeded(seed)
    model = open_clip.CLIP(**cfg)
    folder.mkdir(parents=True, exist_ok=True)
    size_px = cfg["vision_cfg"]["image_size"]
    config = {
        "model_cfg": cfg,
        "preprocess_cfg": {
            "size": size_px,
            "mean": list(open_clip.OPENAI_DATASET_MEAN),
            "std": list(open_clip.OPENAI_DATASET_STD),
        },
    }
    (folder / "open_clip_config.json").write_text(json.dumps(config, indent=1))
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "open_clip_model.safetensors"))
    return RoleSpec(id=name, path=folder.name, licence="MIT (open_clip)")


def write_yolo(folder: Path, size: Size, seed: int) -> RoleSpec:
    """A YOLOv8 from its ultralytics yaml (n for tiny, x for full), saved as a ``.pt``."""
    from ultralytics import YOLO

    arch = "yolov8n" if size == "tiny" else "yolov8x"
    _seeded(seed)
    model = YOLO(f"{arch}.yaml")
    # A yaml-built model names its classes "0".."79": give it COCO's names, which the
    # detect stage maps to furniture codes, as the released weights have them.
    model.model.names = coco_names()
    if size == "tiny":
        _calibrate_tiny_detector(model.model)
    folder.mkdir(parents=True, exist_ok=True)
    model.save(str(folder / f"{arch}.pt"))
    return RoleSpec(
        id=f"ultralytics:{arch}",
        path=f"{folder.name}/{arch}.pt",
        licence="AGPL-3.0",
        imgsz=320 if size == "tiny" else 640,
        max_det=6 if size == "tiny" else 50,
    )


def coco_names() -> dict[int, str]:
    """The 80 COCO class names, from the dataset yaml that ships with ultralytics."""
    from ultralytics.utils import YAML
    from ultralytics.utils.checks import check_yaml

    names: dict[int, str] = YAML.load(check_yaml("coco8.yaml"))["names"]
    return {int(k): str(v) for k, v in names.items()}


def _calibrate_tiny_detector(model: Any) -> None:
    """Raise the class bias of the furniture classes so random weights still detect some.

    YOLO initialises class biases for a 1 % prior, so a random detector reports nothing
    and every stage after it would only ever see empty scenes.
    """
    import torch

    from modomo.domain.taxonomies import COCO_TO_CATEGORY

    head = model.model[-1]
    wanted = [i for i, name in coco_names().items() if name in COCO_TO_CATEGORY]
    # Random features vanish before the head, so scores come from these biases alone:
    # descending values give a spread of confidences and categories, best first.
    with torch.no_grad():
        for rank, index in enumerate(wanted):
            for branch in head.cv3:
                branch[-1].bias[index] = 1.0 - 0.4 * rank


def write_sam2(folder: Path, size: Size, seed: int) -> RoleSpec:
    """A SAM2.1 (hiera tiny at 256 px for tiny, hiera large for full), as a sam2 checkpoint."""
    import torch
    from sam2.build_sam import build_sam2

    overrides: tuple[str, ...]
    if size == "tiny":
        config, overrides = "configs/sam2.1/sam2.1_hiera_t.yaml", ("++model.image_size=256",)
        name = "sam2.1_hiera_tiny@256"
    else:
        config, overrides, name = "configs/sam2.1/sam2.1_hiera_l.yaml", (), "sam2.1_hiera_large"
    _seeded(seed)
    model = build_sam2(config, None, device="cpu", hydra_overrides_extra=list(overrides))
    folder.mkdir(parents=True, exist_ok=True)
    torch.save({"model": model.state_dict()}, folder / "model.pt")
    return RoleSpec(
        id=f"facebook/{name}",
        path=f"{folder.name}/model.pt",
        licence="Apache-2.0",
        config=config,
        overrides=overrides,
    )


def write_grounding_dino(folder: Path, size: Size, seed: int) -> RoleSpec:
    """GroundingDINO (transformers) with a Swin backbone and a BERT text encoder."""
    from transformers import (
        BertConfig,
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
        SwinConfig,
    )

    tokenizer = _bert_tokenizer(folder)
    stages = ["stage2", "stage3", "stage4"]
    if size == "tiny":
        backbone = SwinConfig(
            embed_dim=24,
            depths=[1, 1, 1, 1],
            num_heads=[1, 1, 2, 2],
            window_size=7,
            out_features=stages,
        )
        text = BertConfig(
            vocab_size=len(bert_vocab()),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
        )
        config = GroundingDinoConfig(
            backbone_config=backbone,
            text_config=text,
            d_model=32,
            num_queries=8,
            encoder_layers=1,
            decoder_layers=2,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            encoder_attention_heads=2,
            decoder_attention_heads=2,
            max_text_len=256,
        )
        processor_size = {"shortest_edge": 256, "longest_edge": 384}
        name = "grounding-dino-tiny-random"
    else:
        backbone = SwinConfig(
            embed_dim=96,
            depths=[2, 2, 6, 2],
            num_heads=[3, 6, 12, 24],
            window_size=7,
            out_features=stages,
        )
        config = GroundingDinoConfig(backbone_config=backbone, text_config=BertConfig())
        processor_size = {"shortest_edge": 800, "longest_edge": 1333}
        name = "grounding-dino-tiny@random"
    _seeded(seed)
    model = GroundingDinoForObjectDetection(config).eval()
    processor = GroundingDinoProcessor(
        image_processor=GroundingDinoImageProcessor(size=processor_size), tokenizer=tokenizer
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return RoleSpec(id=f"IDEA-Research/{name}", path=folder.name, licence="Apache-2.0")


def write_depth(folder: Path, size: Size, seed: int) -> RoleSpec:
    """DepthAnything (V2 Small layout at full size) on a DINOv2 backbone."""
    from transformers import (
        DepthAnythingConfig,
        DepthAnythingForDepthEstimation,
        Dinov2Config,
        DPTImageProcessor,
    )

    if size == "tiny":
        backbone = Dinov2Config(
            hidden_size=32,
            num_hidden_layers=4,
            num_attention_heads=2,
            intermediate_size=64,
            patch_size=14,
            image_size=112,
            out_features=["stage1", "stage2", "stage3", "stage4"],
            reshape_hidden_states=False,
        )
        config = DepthAnythingConfig(
            backbone_config=backbone,
            reassemble_hidden_size=32,
            neck_hidden_sizes=[8, 16, 32, 32],
            fusion_hidden_size=16,
            head_hidden_size=8,
        )
        px, name = 112, "Depth-Anything-V2-tiny-random"
    else:
        backbone = Dinov2Config(
            hidden_size=384,
            num_hidden_layers=12,
            num_attention_heads=6,
            intermediate_size=1536,
            patch_size=14,
            image_size=518,
            out_features=["stage3", "stage6", "stage9", "stage12"],
            reshape_hidden_states=False,
        )
        config = DepthAnythingConfig(
            backbone_config=backbone,
            reassemble_hidden_size=384,
            neck_hidden_sizes=[48, 96, 192, 384],
            fusion_hidden_size=64,
            head_hidden_size=32,
        )
        px, name = 518, "Depth-Anything-V2-Small@random"
    _seeded(seed)
    model = DepthAnythingForDepthEstimation(config).eval()
    processor = DPTImageProcessor(
        size={"height": px, "width": px},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        do_pad=False,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return RoleSpec(id=f"depth-anything/{name}", path=folder.name, licence="Apache-2.0")


def write_captioner(folder: Path, size: Size, seed: int) -> RoleSpec:
    """BLIP image captioning (base-size text decoder; large vision tower at full size)."""
    from transformers import (
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessor,
        BlipProcessor,
    )

    tokenizer = _bert_tokenizer(folder)
    vocab = bert_vocab()
    ids = {
        "bos_token_id": vocab.index(DEC_TOKEN),
        "pad_token_id": 0,
        "sep_token_id": 102,
        "eos_token_id": 102,
    }
    if size == "tiny":
        vision = {
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "image_size": 64,
            "patch_size": 16,
        }
        text = {
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "encoder_hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            **ids,
        }
        px, name = 64, "blip-captioning-tiny-random"
    else:
        vision = {
            "hidden_size": 1024,
            "intermediate_size": 4096,
            "num_hidden_layers": 24,
            "num_attention_heads": 16,
            "image_size": 384,
            "patch_size": 16,
        }
        text = {
            "vocab_size": 30524,
            "hidden_size": 768,
            "encoder_hidden_size": 1024,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            **ids,
        }
        px, name = 384, "blip-image-captioning-large@random"
    config = BlipConfig(vision_config=vision, text_config=text, projection_dim=text["hidden_size"])
    _seeded(seed)
    model = BlipForConditionalGeneration(config).eval()
    if size == "tiny":
        # Random weights otherwise pick [PAD]/[unusedN] tokens, which decode to nothing.
        import torch

        blocked = [i for i, token in enumerate(vocab) if token.startswith("[")]
        with torch.no_grad():
            head = model.text_decoder.cls.predictions
            head.bias[blocked] = -30.0
            head.decoder.bias[blocked] = -30.0
    processor = BlipProcessor(
        image_processor=BlipImageProcessor(size={"height": px, "width": px}), tokenizer=tokenizer
    )
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return RoleSpec(id=f"Salesforce/{name}", path=folder.name, licence="BSD-3-Clause")


def write_model_dir(model_dir: Path, size: Size = "tiny", seed: int = 0) -> Manifest:
    """Build every role at ``size`` with random weights under ``seed`` and save them all.

    Each role gets its own seed (``seed + n``), so its weights do not depend on which other
    roles were built before it.
    """
    model_dir.mkdir(parents=True, exist_ok=True)
    specs = {
        role: writer(model_dir / role, size, seed + n)
        for n, (role, writer) in enumerate(
            (
                ("clip", write_clip),
                ("yolo", write_yolo),
                ("sam2", write_sam2),
                ("grounding_dino", write_grounding_dino),
                ("depth", write_depth),
                ("captioner", write_captioner),
            )
        )
    }
    manifest = Manifest(profile="tiny" if size == "tiny" else "full-random", seed=seed, **specs)
    write_manifest(model_dir, manifest)
    return manifest
