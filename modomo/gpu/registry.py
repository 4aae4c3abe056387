"""Which model directory a process uses, and the one loaded :class:`Models` per process.

``MODOMO_MODEL_PROFILE``: ``real`` loads pulled weights from ``MODOMO_MODEL_DIR`` and
refuses to start without them; ``tiny`` and ``full-random`` write random-weight directories
(once, under the seed) beside it and load those; ``auto`` takes the real weights when the
directory has them and otherwise falls back to ``tiny``, with a warning, since random
weights label nothing usefully. Every event records the profile that produced it.
"""

from __future__ import annotations

import threading
from pathlib import Path

import structlog

from modomo.gpu.manifest import read_manifest
from modomo.gpu.models import ModelDirError, Models, load_models
from modomo.gpu.runtime import Runtime, choose_runtime, prepare_environment
from modomo.settings import Settings

log = structlog.get_logger("modomo.gpu.registry")

_lock = threading.Lock()
_loaded: dict[tuple[str, str], Models] = {}


def model_dir_for(settings: Settings) -> Path:
    """The directory to load, writing a random-weight one first when the profile asks."""
    from modomo.gpu.tiny import write_model_dir

    base = Path(settings.model_dir)
    profile = settings.model_profile
    if profile == "auto":
        manifest = read_manifest(base)
        if manifest is not None and manifest.profile == "real":
            return base
        log.warning(
            "model_profile_fallback",
            model_dir=str(base),
            profile="tiny",
            reason="no pulled weights here: results come from random weights",
        )
        profile = "tiny"
    if profile == "real":
        manifest = read_manifest(base)
        if manifest is None:
            raise ModelDirError(
                f"MODOMO_MODEL_PROFILE=real but {base} has no weights: run `modomo models pull`"
            )
        return base
    folder = base / f"{profile}-seed{settings.model_seed}"
    if read_manifest(folder) is None:
        log.info("writing_random_models", profile=profile, model_dir=str(folder))
        write_model_dir(folder, "tiny" if profile == "tiny" else "full", settings.model_seed)
    return folder


def get_models(settings: Settings, runtime: Runtime | None = None) -> Models:
    """The process's models for these settings: loaded on first use, then reused."""
    prepare_environment()
    runtime = runtime or choose_runtime(settings.device, settings.torch_threads)
    folder = model_dir_for(settings)
    key = (str(folder.resolve()), runtime.device)
    with _lock:
        models = _loaded.get(key)
        if models is None:
            models = load_models(folder, runtime)
            _loaded[key] = models
        return models
