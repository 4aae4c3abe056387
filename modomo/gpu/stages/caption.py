"""Caption: one short description per image from a BLIP-style captioner (greedy, so the
same image and weights always give the same words)."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image

from modomo.domain.text import sanitise
from modomo.gpu.models import HFModel
from modomo.gpu.runtime import Runtime, inference

MAX_NEW_TOKENS = 24


def caption(captioner: HFModel, runtime: Runtime, images: Sequence[Image.Image]) -> list[str]:
    """Per image, a short caption (whitespace collapsed, at most ``MAX_NEW_TOKENS`` tokens)."""
    processor = captioner.processor
    inputs = processor(images=list(images), return_tensors="pt")
    with inference(runtime):
        tokens = captioner.model.generate(
            pixel_values=inputs["pixel_values"].to(runtime.device),
            max_new_tokens=MAX_NEW_TOKENS,
            num_beams=1,
            do_sample=False,
        )
    # The first token is BLIP's decoder start token ([DEC]), not part of the caption.
    texts = processor.batch_decode(tokens[:, 1:], skip_special_tokens=True)
    # A model can emit any characters; the log takes only text PostgreSQL can store.
    return [sanitise(" ".join(str(text).split())) for text in texts]
