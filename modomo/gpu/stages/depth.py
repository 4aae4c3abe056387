"""Depth (DepthAnything): one relative depth map per image, stored as a 16-bit PNG.

DepthAnything predicts relative inverse depth (larger is nearer). The PNG spreads the
scene's own range over 0..65535 (65535 nearest); ``near`` and ``far`` are the model's values
at the two ends, so the map can be put back on the model's scale.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

from modomo.gpu.models import HFModel
from modomo.gpu.runtime import Runtime, inference


def estimate_depth(
    depth: HFModel, runtime: Runtime, images: Sequence[Image.Image]
) -> list[np.ndarray]:
    """Per image a float32 (H, W) map at the image's own size.

    Images whose processed sizes match share a forward (a batch of same-shaped photos is
    one call); others run in groups of their own.
    """
    import torch
    import torch.nn.functional as F

    tensors = [
        depth.processor(images=image, return_tensors="pt")["pixel_values"][0] for image in images
    ]
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, tensor in enumerate(tensors):
        groups.setdefault(tuple(tensor.shape), []).append(i)
    out: list[np.ndarray] = [np.empty(0, np.float32)] * len(images)
    for indices in groups.values():
        batch = torch.stack([tensors[i] for i in indices]).to(runtime.device)
        with inference(runtime):
            predicted = depth.model(pixel_values=batch).predicted_depth.float()
        for k, i in enumerate(indices):
            w, h = images[i].size
            resized = F.interpolate(
                predicted[k][None, None], size=(h, w), mode="bilinear", align_corners=False
            )
            out[i] = resized[0, 0].cpu().numpy().astype(np.float32)
    return out


def depth_png(values: np.ndarray) -> tuple[bytes, float, float]:
    """``(png, near, far)``: the map as a 16-bit greyscale PNG and its range's ends."""
    near, far = float(values.max()), float(values.min())
    span = near - far
    scaled = (values - far) / span if span > 0 else np.zeros_like(values)
    grey = np.round(scaled * 65535).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(grey).save(buffer, format="PNG")
    return buffer.getvalue(), near, far
