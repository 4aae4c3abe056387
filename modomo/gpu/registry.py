"""Which model directory a process uses, and the one loaded :class:`Models` per process.

``MODOMO_MODEL_PROFILE``: ``real`` loads pulled weights from ``MODOMO_MODEL_DIR``;
``auto`` (the default) is the same (it no longer falls back to random weights, which label
nothing usefully, so a worker without real weights refuses to start with a sentence naming
``modomo models pull``); ``tiny`` and ``full-random`` must be asked for explicitly (the
demo and the tests do): they write random-weight directories (once, under the seed) beside
it and load those. Every event records the profile and a digest of the weights.
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


class NoWeightsError(ModelDirError):
    """The profile asks for real weights and the model directory has none."""


def check_profile(settings: Settings) -> str:
    """The profile the worker will load; raises NoWeightsError, with the sentence to show,
    when it asks for real weights (``real`` or ``auto``) that are not there."""
    base = Path(settings.model_dir)
    if settings.model_profile not in ("real", "auto"):
        return settings.model_profile
    manifest = read_manifest(base)
    if manifest is None or manifest.profile != "real":
        raise NoWeightsError(
            f"no real model weights in {base} (MODOMO_MODEL_DIR): run `modomo models pull` "
            "to fetch them, or set MODOMO_MODEL_PROFILE=tiny to run on random weights "
            "(demos and tests only: they label nothing usefully)"
        )
    return "real"


def model_dir_for(settings: Settings) -> Path:
    """The directory to load, writing a random-weight one first when the profile asks."""
    from modomo.gpu.tiny import write_model_dir

    base = Path(settings.model_dir)
    profile = check_profile(settings)
    if profile == "real":
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
