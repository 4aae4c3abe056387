"""The GPU pipeline, sequential against optimized, on the same models and images.

Sequential: one scene at a time, one model call per stage. Optimized: ``--batch`` scenes
in flight, each stage's calls merged into one model call on the single GPU thread, with
decoding, encoding and artifact writes overlapping it. Both modes run the same generated
photos through the same loaded models in one run; the table gives per-stage latency,
per-scene latency and scenes/s, with the ratio.

    python bench/pipeline.py                                    # tiny profile, CPU
    python bench/pipeline.py --profile full-random --scenes 32  # real-size nets, for a GPU

Random weights compute exactly what trained ones do, but some stages depend on their
outputs (objects found drive segment and material); the tiny profile's calibrated
detector finds 6 objects per scene, random full-size weights find what they find.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modomo.gpu.runtime import prepare_environment

prepare_environment()

from modomo.domain.events import STAGE_OF, EventBase, StageEvent  # noqa: E402
from modomo.domain.stages import SceneTask  # noqa: E402
from modomo.gpu.batcher import Batcher  # noqa: E402
from modomo.gpu.pipeline import RUN_ORDER, Pipeline  # noqa: E402
from modomo.gpu.registry import get_models  # noqa: E402
from modomo.gpu.runtime import gpu_memory_used  # noqa: E402
from modomo.gpu.storage import DirStorage  # noqa: E402
from modomo.settings import Settings  # noqa: E402


def _photos(count: int, width: int, height: int) -> list[bytes]:
    from tests.gpu.images import jpeg_bytes, room_image

    return [jpeg_bytes(room_image(width, height, seed=i)) for i in range(count)]


class _Busy:
    """Samples GPU utilisation (NVML) every 50 ms while running."""

    def __init__(self, device: str) -> None:
        self.samples: list[int] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cuda = device.startswith("cuda")

    def __enter__(self) -> _Busy:
        if self.cuda:
            self._thread = threading.Thread(target=self._run, daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        import torch

        while not self._stop.wait(0.05):
            self.samples.append(int(torch.cuda.utilization()))

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join()

    @property
    def percent(self) -> float | None:
        return statistics.fmean(self.samples) if self.samples else None


async def _run(
    pipeline: Pipeline, tasks: list[SceneTask], in_flight: int
) -> tuple[float, dict[str, list[float]], list[float]]:
    """Wall seconds, per-stage durations (ms) and per-scene durations (ms)."""
    stages: dict[str, list[float]] = {}
    scenes: list[float] = []
    gate = asyncio.Semaphore(in_flight)

    async def one(task: SceneTask) -> None:
        async with gate:

            async def emit(event: EventBase) -> None:
                if isinstance(event, StageEvent):
                    stages.setdefault(STAGE_OF[type(event)], []).append(event.duration_ms)

            done = await pipeline.run(task, emit)
            scenes.append(done.duration_ms)

    started = time.perf_counter()
    await asyncio.gather(*(one(t) for t in tasks))
    return time.perf_counter() - started, stages, scenes


def _param_bytes(model: Any) -> int:
    params = getattr(model, "parameters", None)
    if params is None:
        return 0
    return sum(p.numel() * p.element_size() for p in params())


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=["tiny", "full-random", "real"], default="tiny")
    parser.add_argument("--scenes", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8, help="scenes in flight, optimized")
    parser.add_argument("--size", default="1280x960", help="photo size, WxH")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model-dir", default=os.environ.get("MODOMO_MODEL_DIR", ".modomo/models"))
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    settings = Settings.from_env(
        {}, model_profile=args.profile, model_dir=args.model_dir, device=args.device
    )
    loaded = time.perf_counter()
    models = get_models(settings)
    print(
        f"profile {models.profile} on {models.runtime.device} ({models.runtime.dtype_name}), "
        f"models loaded in {time.perf_counter() - loaded:.1f} s"
    )
    sizes = {
        "clip": _param_bytes(models.clip.model),
        "yolo": _param_bytes(models.detector.model.model),
        "sam2": _param_bytes(models.segmenter.predictor.model),
        "grounding_dino": _param_bytes(models.grounder.model),
        "depth": _param_bytes(models.depth.model),
        "captioner": _param_bytes(models.captioner.model),
    }
    print("weights: " + ", ".join(f"{k} {v / 2**20:.0f} MiB" for k, v in sizes.items()))
    with tempfile.TemporaryDirectory() as folder:
        storage = DirStorage(Path(folder))
        tasks = []
        for i, data in enumerate(_photos(args.scenes, width, height)):
            scene_id = f"00000000-0000-4000-8000-{i:012d}"
            await storage.put(f"scenes/{scene_id}.jpg", data, "image/jpeg")
            tasks.append(
                SceneTask(
                    job_id="bench", scene_id=scene_id, r2_key_original=f"scenes/{scene_id}.jpg"
                )
            )
        sequential = Pipeline(models, storage, settings, batcher=Batcher(1))
        await _run(sequential, tasks[:1], 1)  # warm-up: lazy inits, caches, cudnn autotune
        if models.runtime.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        with _Busy(models.runtime.device) as seq_busy:
            seq_s, seq_stages, seq_scenes = await _run(sequential, tasks, 1)
        batcher = Batcher(args.batch)
        optimized = Pipeline(models, storage, settings, batcher=batcher)
        with _Busy(models.runtime.device) as opt_busy:
            opt_s, opt_stages, opt_scenes = await _run(optimized, tasks, args.batch)
        batcher.close()
        sequential.batcher.close()

    n = len(tasks)
    print(f"\n{n} scenes of {width}x{height}; optimized: {args.batch} in flight\n")
    print(f"{'stage':<10} {'sequential ms':>14} {'optimized ms':>13}  (mean per scene)")
    for stage in RUN_ORDER:
        a, b = seq_stages.get(stage, []), opt_stages.get(stage, [])
        if a:
            print(f"{stage:<10} {statistics.fmean(a):>14.1f} {statistics.fmean(b):>13.1f}")
    print(
        f"{'WHOLE':<10} {statistics.fmean(seq_scenes):>14.1f} {statistics.fmean(opt_scenes):>13.1f}"
    )
    seq_rate, opt_rate = n / seq_s, n / opt_s
    print(f"\n{'mode':<11} {'scenes/s':>9} {'vs sequential':>14} {'GPU busy':>9}")
    for mode, rate, busy in (
        ("sequential", seq_rate, seq_busy.percent),
        ("optimized", opt_rate, opt_busy.percent),
    ):
        shown = f"{busy:.0f} %" if busy is not None else "-"
        print(f"{mode:<11} {rate:>9.2f} {rate / seq_rate:>13.2f}x {shown:>9}")
    batches = {k: statistics.fmean(v) for k, v in batcher.batch_sizes.items()}
    print("mean batch: " + ", ".join(f"{k} {v:.1f}" for k, v in batches.items()))
    if models.runtime.cuda:
        import torch

        peak = torch.cuda.max_memory_allocated() / 2**30
        held = gpu_memory_used(models.runtime) / 2**30
        print(f"GPU memory: {held:.1f} GiB held, {peak:.1f} GiB peak")


if __name__ == "__main__":
    asyncio.run(main())
